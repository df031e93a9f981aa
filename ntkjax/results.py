"""Results on disk: append-only CSV tables keyed by a column, typed Parquet
copies of finished tables, the pinned config of a workdir (with the commit
and versions of every start), and a lock that keeps two runs out of one
workdir.

Each row is flushed and fsynced as soon as it is written, so an interrupted
run loses at most the row in flight, and a rerun skips keys already present.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pathlib
from typing import Iterable, Mapping, Sequence

__all__ = ["ResultsCSV", "write_csv", "write_parquet", "pin_config", "read_config", "holds_results", "saved_rows",
           "WorkdirLock", "WorkdirInUse", "CONFIG_FILE", "LOCK_FILE"]

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
# Written by every run before any result; they alone do not make a workdir's config binding.
_SETUP_FILES = {CONFIG_FILE, LOCK_FILE, "minibatch.csv", "archs.txt"}


class ResultsCSV:
  """``ResultsCSV(path, fields, key='arch')``: rows are dicts over ``fields``,
  one per key. Rows left duplicated by an earlier run are dropped on load
  (the first is kept); appending a key already present is an error."""

  def __init__(self, path, fields: Iterable[str], key: str = "arch"):
    self.path = pathlib.Path(path)
    self.fields = list(fields)
    self.key = key
    if key not in self.fields:
      raise ValueError(f"{self.path}: key column {key!r} is not among the fields {self.fields}")
    self.rows: list[dict[str, str]] = []
    self.done: set[str] = set()
    if self.path.exists() and self.path.stat().st_size:
      with open(self.path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != self.fields:
          raise ValueError(f"{self.path} has columns {reader.fieldnames}, expected {self.fields}; "
                           "use a fresh workdir for a different configuration")
        for r in reader:
          # A row cut short by a crash has missing trailing fields: drop it.
          if None not in r.values() and r[key] not in self.done:
            self.rows.append(r)
            self.done.add(r[key])
    self.path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(self.path, self.rows, self.fields)

  def append(self, row: Mapping[str, object]) -> None:
    missing = set(self.fields) - set(row)
    if missing:
      raise ValueError(f"{self.path}: row is missing columns {sorted(missing)}")
    clean = {k: str(row[k]) for k in self.fields}
    if clean[self.key] in self.done:
      raise ValueError(f"{self.path} already holds a row for {self.key}={clean[self.key]!r}")
    with open(self.path, "a", newline="") as f:
      csv.DictWriter(f, self.fields).writerow(clean)
      f.flush()
      os.fsync(f.fileno())
    self.rows.append(clean)
    self.done.add(clean[self.key])

  def by_key(self) -> dict[str, dict[str, str]]:
    return {r[self.key]: r for r in self.rows}


def write_csv(path, rows: Sequence[Mapping], fields: Sequence[str]) -> pathlib.Path:
  """Writes ``rows`` atomically (tmp + rename); floats as ``%.6g``."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, list(fields), extrasaction="ignore")
    w.writeheader()
    for r in rows:
      w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
  os.replace(tmp, path)
  return path


def _typed_column(values: Sequence[str]):
  """A CSV column as int64 (blanks null), else float64, else strings."""
  import pyarrow as pa  # noqa: PLC0415  (only the Parquet writer needs it)
  for kind, parse in ((pa.int64(), int), (pa.float64(), float)):
    try:
      return pa.array([parse(v) if v != "" else None for v in values], type=kind)
    except ValueError:
      continue
  return pa.array(list(values), type=pa.string())


def write_parquet(path, rows: Sequence[Mapping[str, str]], fields: Sequence[str],
                  metadata: Mapping[str, str] | None = None) -> pathlib.Path:
  """Writes CSV-style string rows as one typed Parquet table (tmp + rename):
  each column is int64 where every value is an integer or blank (null),
  else float64 where every value parses as a float, else string.
  ``metadata`` (e.g. the pinned config as JSON) goes into the schema."""
  import pyarrow as pa  # noqa: PLC0415
  import pyarrow.parquet as pq  # noqa: PLC0415
  path = pathlib.Path(path)
  table = pa.table({f: _typed_column([str(r.get(f, "")) for r in rows]) for f in fields})
  if metadata:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **dict(metadata)})
  tmp = path.with_name(path.name + ".tmp")
  pq.write_table(table, tmp)
  os.replace(tmp, path)
  return path


def saved_rows(workdir) -> int:
  """The data rows of every results CSV in ``workdir`` (what a rerun keeps)."""
  total = 0
  for p in pathlib.Path(workdir).rglob("*.csv"):
    if p.name in _SETUP_FILES:
      continue
    with open(p, newline="") as f:
      total += max(0, sum(1 for _ in csv.reader(f)) - 1)
  return total


def holds_results(workdir) -> bool:
  """Whether ``workdir`` holds anything a run wrote after its set-up: a CSV
  row, a checkpoint, a history."""
  workdir = pathlib.Path(workdir)
  for p in workdir.rglob("*"):
    if p.is_dir() or p.name in _SETUP_FILES or p.name.endswith(".tmp"):
      continue
    if p.suffix == ".csv":
      with open(p, newline="") as f:
        if sum(1 for _ in zip(range(2), f)) < 2:  # a header alone is no result
          continue
    return True
  return False


def read_config(workdir) -> tuple[dict, list[dict]]:
  """The config pinned in ``workdir/config.json`` and the environment of
  every start of the run (oldest first)."""
  saved = json.loads((pathlib.Path(workdir) / CONFIG_FILE).read_text())
  return saved["config"], saved.get("runs", [])


def _same_config(old, new) -> bool:
  """Equal, where a field absent from ``old`` equals a ``None`` in ``new``
  (a field added since, at its default, changes no result)."""
  if isinstance(new, dict) and (old is None or isinstance(old, dict)):
    old = old or {}
    return all(_same_config(old.get(k), new.get(k)) for k in set(old) | set(new))
  return old == new


def pin_config(workdir, config: Mapping, environment: Mapping | None = None) -> pathlib.Path:
  """Writes ``config`` (a JSON-able mapping) to ``workdir/config.json``,
  with ``environment`` (``provenance.environment()``: commit, versions,
  device) appended to the file's list of runs, one per start.

  A workdir that holds results of a different config is refused (resuming
  needs the same one; a field the saved config lacks may be ``None``); one
  that holds none (a start that failed) takes the new config."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  new = json.loads(json.dumps(config, sort_keys=True))
  saved = workdir / CONFIG_FILE
  runs = []
  if saved.exists():
    old, runs = read_config(workdir)
    if not _same_config(old, new) and holds_results(workdir):
      diff = sorted(k for k in set(old) | set(new) if not _same_config(old.get(k), new.get(k)))
      raise ValueError(f"{workdir} holds results of a different config (sections {diff} differ); "
                       "use a new --workdir")
  if environment is not None:
    runs = runs + [json.loads(json.dumps(dict(environment)))]
  tmp = saved.with_name(saved.name + ".tmp")
  tmp.write_text(json.dumps({"config": new, "runs": runs}, indent=1, sort_keys=True) + "\n")
  os.replace(tmp, saved)
  return saved


class WorkdirInUse(RuntimeError):
  pass


class WorkdirLock:
  """An advisory lock on ``workdir/.lock`` (``fcntl.flock``), held while a
  run writes there; the file names the holder's pid. Released, and the file
  removed, on exit; the kernel releases it when the process dies (the file
  stays then, and the next run takes it over)."""

  def __init__(self, workdir):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._fd: int | None = None

  def acquire(self) -> "WorkdirLock":
    self.path.parent.mkdir(parents=True, exist_ok=True)
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise WorkdirInUse(f"{self.path.parent} is in use by another run (pid {holder}, lock {self.path}); "
                           "wait for it to finish or use another --workdir") from None
      try:
        if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
          break
      except FileNotFoundError:
        pass
      os.close(fd)  # locked a file its holder removed on release: lock the path's new file instead
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      self.path.unlink(missing_ok=True)  # while still held, so no one locks a file about to go
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
