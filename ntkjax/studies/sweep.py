"""The ``sweep`` job: the four NTK metrics in both BN modes for every
architecture of NB201 (or a given list), a batch of archs per device per
call, sharded over this process's devices and, in a ``jax.distributed`` job,
over processes.

Process k of n works in ``workdir/process-k-of-n/`` (its own lock, pinned
config and resumable ``results.csv``, so each resumes on its own after
``kill -9``); process 0 then waits for every shard (logging which
processes it waits for and how to resume) and merges them into
``workdir/results.csv``, one row per arch in sweep order, and its typed
columnar copy ``workdir/results.parquet`` (config and environment in the
schema metadata; it loads far faster than the CSV: BENCHMARKS.md, "Sweep
throughput").
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from ntkjax import parallel, provenance, results, scoring
from ntkjax.spaces import nb201
from ntkjax.studies import setup

__all__ = ["SweepResult", "run", "sweep_archs", "process_workdir"]


def sweep_archs(config: ml_collections.ConfigDict) -> list[str]:
  """The archs of the sweep, in order: ``sweep.archs`` is ``'all'`` (the
  15,625 in lexicographic op order) or a text file of arch strings, one per
  line; ``sweep.num_archs`` keeps n of them evenly spaced through that order
  (the first n of the lexicographic order would all be degenerate)."""
  source = config.sweep.archs
  if source == "all":
    archs = nb201.all_archs()
  else:
    path = pathlib.Path(source)
    if not path.is_file():
      raise FileNotFoundError(f"sweep.archs: no such file {path} (give 'all' or a file of arch strings)")
    archs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
      if line.strip():
        try:
          archs.append(nb201.encode(nb201.decode(line.strip())))
        except ValueError as e:
          raise ValueError(f"{path}:{i}: {e}") from None
    if len(set(archs)) != len(archs):
      raise ValueError(f"{path} lists an arch twice")
  n = config.sweep.num_archs
  return archs if n is None or n >= len(archs) else archs[::len(archs) // n][:n]


def process_workdir(workdir, index: int, count: int) -> pathlib.Path:
  return pathlib.Path(workdir) / f"process-{index}-of-{count}"


class SweepResult(NamedTuple):
  num_archs: int                 # in the whole sweep
  rows: list[scoring.ArchScore]  # this process's share
  columns: list[str]
  process_index: int
  process_count: int
  devices: int
  steady_archs_per_second: float  # this process, compilation excluded (nan when nothing was computed)
  merged: pathlib.Path | None
  output_dir: pathlib.Path         # where the launcher writes summary.txt: this process's own directory

  def summary(self) -> str:
    n = len(self.rows)
    lines = [f"NB201 sweep: process {self.process_index} of {self.process_count} scored {n} of "
             f"{self.num_archs} archs on {self.devices} device(s)"]
    if np.isfinite(self.steady_archs_per_second):
      lines.append(f"steady throughput {self.steady_archs_per_second:.3g} archs/s")
    lines.append(f"degenerate {sum(r.degenerate for r in self.rows)}, "
                 f"non-finite {sum(r.nonfinite for r in self.rows)}")
    lines.append(f"merged table: {self.merged} (typed copy: {self.merged.with_suffix('.parquet').name})"
                 if self.merged else "merged table: written by process 0")
    return "\n".join(lines)

  def tables(self):
    return {}

  def figures(self):
    return {}


def _wait_and_merge(workdir: pathlib.Path, archs: Sequence[str], count: int, columns: list[str],
                    timeout_s: float, config: ml_collections.ConfigDict) -> pathlib.Path:
  """Merges the shards into ``results.csv`` and its typed copy
  ``results.parquet`` (the config in the schema metadata), once every
  process has written its share."""
  shards = [process_workdir(workdir, i, count) / "results.csv" for i in range(count)]
  deadline = time.monotonic() + timeout_s
  waiting_for, last_log = None, -math.inf
  while True:
    try:
      rows = parallel.merge_shards(shards, workdir / "results.csv", archs, columns)
      results.write_parquet(workdir / "results.parquet", rows, columns,
                            {"config": config.to_json(), "processes": str(count),
                             "environment": json.dumps(provenance.environment())})
      return workdir / "results.csv"
    except (ValueError, FileNotFoundError):
      if time.monotonic() > deadline:
        raise
    # counted only while the merge cannot be made yet: a successful pass reads the shards once
    pending = _pending(shards, archs, count)
    if pending and (pending != waiting_for or time.monotonic() - last_log > 60):
      waiting_for, last_log = pending, time.monotonic()
      logging.info("process 0 waits for %s (up to sweep.merge_timeout_s = %g s); if a process has died, start "
                   "every process again with the same arguments: each resumes from its own shard",
                   ", ".join(f"process {i}: {done} of {want} rows" for i, done, want in pending), timeout_s)
    time.sleep(2.0)


def _pending(shards: Sequence[pathlib.Path], archs: Sequence[str], count: int) -> list[tuple[int, int, int]]:
  """(process, rows written, rows of its share) of each shard not yet complete."""
  out = []
  for i, shard in enumerate(shards):
    want = len(parallel.process_share(range(len(archs)), i, count))
    done = results.saved_rows(shard.parent) if shard.parent.is_dir() else 0
    if done < want:
      out.append((i, done, want))
  return out


def run(config: ml_collections.ConfigDict, workdir) -> SweepResult:
  """Runs the sweep described by ``configs/sweep.py``; in a
  ``jax.distributed`` job every process calls it with the same config."""
  setup.check_config(config)
  if config.space.name != "nb201":
    raise ValueError(f"the sweep runs on nb201, not {config.space.name!r}")
  archs = sweep_archs(config)
  index, count = jax.process_index(), jax.process_count()
  mine = parallel.process_share(range(len(archs)), index, count)
  workdir = pathlib.Path(workdir)
  mesh = parallel.arch_mesh(jax.local_devices())
  with setup.prepare(config, process_workdir(workdir, index, count)) as job:
    options = setup.score_options(config, job)
    options.pop("clear_caches")
    progress = options["progress"]
    rows = parallel.score_sharded(job.workdir / "results.csv", [archs[i] for i in mine], mine, mesh=mesh,
                                  archs_per_device=config.sweep.archs_per_device, **options)
  columns = scoring.result_columns(config.bn_modes, setup.proxy_names(config))
  merged = (_wait_and_merge(workdir, archs, count, columns, config.sweep.merge_timeout_s, config) if index == 0
            else None)
  rate = 1.0 / float(np.mean(progress.steady)) if progress.steady else float("nan")
  return SweepResult(len(archs), rows, setup.score_columns(config)[:-1], index, count, mesh.size, rate,
                     merged, workdir if count == 1 else process_workdir(workdir, index, count))
