"""Append-only CSV results keyed by a column, for resumable long runs.

Each row is flushed and fsynced as soon as it is written, so an interrupted
run loses at most the row in flight, and a rerun skips keys already present.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
from typing import Iterable, Mapping

__all__ = ["ResultsCSV", "pin_config"]


class ResultsCSV:
  """``ResultsCSV(path, fields, key='arch')``: rows are dicts over ``fields``."""

  def __init__(self, path, fields: Iterable[str], key: str = "arch"):
    self.path = pathlib.Path(path)
    self.fields = list(fields)
    self.key = key
    if key not in self.fields:
      raise ValueError(f"key column {key!r} is not among the fields {self.fields}")
    self.rows: list[dict[str, str]] = []
    if self.path.exists() and self.path.stat().st_size:
      with open(self.path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != self.fields:
          raise ValueError(f"{self.path} has columns {reader.fieldnames}, expected {self.fields}; "
                           "use a fresh workdir for a different configuration")
        # A row cut short by a crash has missing trailing fields: drop it.
        self.rows = [r for r in reader if None not in r.values()]
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._rewrite()
    self.done = {r[key] for r in self.rows}

  def _rewrite(self):
    tmp = self.path.with_suffix(self.path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
      writer = csv.DictWriter(f, self.fields)
      writer.writeheader()
      writer.writerows(self.rows)
    os.replace(tmp, self.path)

  def append(self, row: Mapping[str, object]) -> None:
    missing = set(self.fields) - set(row)
    if missing:
      raise ValueError(f"row is missing columns {sorted(missing)}")
    clean = {k: str(row[k]) for k in self.fields}
    with open(self.path, "a", newline="") as f:
      csv.DictWriter(f, self.fields).writerow(clean)
      f.flush()
      os.fsync(f.fileno())
    self.rows.append(clean)
    self.done.add(clean[self.key])


def pin_config(workdir, config) -> pathlib.Path:
  """Writes ``config`` to ``workdir/config.json``, refusing a workdir that
  holds results of a different config (resuming needs the same one)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  new = json.loads(config.to_json_best_effort(sort_keys=True))
  saved = workdir / "config.json"
  if saved.exists():
    old = json.loads(saved.read_text())
    if old != new:
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      raise ValueError(f"{workdir} holds results of a different config (sections {diff} differ); "
                       "use a new --workdir")
  saved.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
  return workdir
