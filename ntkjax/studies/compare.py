"""Two runs over the same archs, score by score: how far one setting ranks
the archs like another, e.g. a reduced CPU-scale network against the
benchmark's network, or 16 images against 64.

It reads the two run folders (``config.json`` and ``results.csv`` of an
at-init study: ``rank_correlation``, ``score``, ``proxy_agreement``), pairs
the archs both scored, and gives per score the Kendall τ between the runs
and each run's τ with the ground truth (``ranking.compare_runs``). The runs
must share the space and the ground truth; every other config field that
differs is listed, so the table says what it compares.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import NamedTuple

import ml_collections
import numpy as np

from ntkjax import proxies, ranking, results, scoring
from ntkjax.studies import setup

__all__ = ["Run", "CompareResult", "read_run", "config_differences", "compare", "run"]

_SCORES = scoring.metric_columns() + scoring.proxy_columns(proxies.NAMES) + ["params"]
# A machine-specific path: where the data sat, not what was computed.
_PATHS = {"data.root"}


class Run(NamedTuple):
  """One run folder: its pinned config and its rows by arch."""
  path: pathlib.Path
  config: dict
  rows: dict[str, dict[str, str]]


def read_run(path) -> Run:
  """The config (``config.json``, pinned by the run or copied bare) and the
  rows of ``results.csv`` in run folder ``path``."""
  path = pathlib.Path(path)
  for name in (results.CONFIG_FILE, "results.csv"):
    if not (path / name).is_file():
      raise FileNotFoundError(f"{path / name} is missing: give the folder of an at-init run "
                              "(rank_correlation, score, proxy_agreement)")
  saved = json.loads((path / results.CONFIG_FILE).read_text())
  config = saved["config"] if "config" in saved and "runs" in saved else saved
  with open(path / "results.csv", newline="") as f:
    rows = {r["arch"]: r for r in csv.DictReader(f) if None not in r.values()}
  if not rows:
    raise ValueError(f"{path / 'results.csv'} holds no rows")
  return Run(path, config, rows)


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(a: dict, b: dict) -> list[tuple[str, object, object]]:
  """``(field, value in a, value in b)`` for every field both configs pin
  with different values; paths and the ground truth (compared by its
  values) left out."""
  fa, fb = _flat(a), _flat(b)
  return [(k, fa[k], fb[k]) for k in sorted(set(fa) & set(fb))
          if k not in _PATHS and not k.startswith("ground_truth.") and fa[k] != fb[k]]


# Fields that runs pinned before they existed lack, at the values those runs used (all NB201).
_OLD_DEFAULTS = {"space.name": "nb201", "ground_truth.table": None, "ground_truth.path": None,
                 "ground_truth.format": "nb201", "ground_truth.release": "v1x", "ground_truth.index_column": None,
                 "ground_truth.nds_space": None}


def _field(r: Run, field: str):
  return _flat(r.config).get(field, _OLD_DEFAULTS.get(field))


def _truth_section(r: Run) -> dict:
  gt = {k.split(".", 1)[1]: _field(r, k) for k in _OLD_DEFAULTS if k.startswith("ground_truth.")}
  return {**gt, **r.config["ground_truth"]}


class CompareResult(NamedTuple):
  run_a: str
  run_b: str
  network_a: str
  network_b: str
  differences: list[tuple[str, object, object]]
  only_a: int                      # archs scored by one run only (left out)
  only_b: int
  truth: str
  table: list[ranking.ComparisonRow]

  def summary(self) -> str:
    diff = "; ".join(f"{k}: {va!r} | {vb!r}" for k, va, vb in self.differences) or "none"
    lines = [f"a: {self.run_a} ({self.network_a})", f"b: {self.run_b} ({self.network_b})",
             f"config fields that differ (a | b): {diff}",
             f"{self.table[0].n if self.table else 0} archs in both runs ({self.only_a} only in a, {self.only_b} "
             f"only in b); truth {self.truth}",
             f"{'score':<16}{'a vs b':>8}{'tau a':>16}{'tau b':>16}{'b - a (paired)':>20}"]
    for r in self.table:
      lines.append(f"{r.metric:<16}{r.agreement:>8.3f}{r.tau_a:>9.3f} ± {r.tau_a_se:.3f}{r.tau_b:>9.3f} ± "
                   f"{r.tau_b_se:.3f}{r.delta:>+12.3f} ± {r.delta_se:.3f}")
    return "\n".join(lines)

  def tables(self):
    return {"comparison.csv": ([r._asdict() for r in self.table], list(ranking.ComparisonRow._fields))}

  def figures(self):
    return {}


def compare(a: Run, b: Run) -> CompareResult:
  """Every score both runs hold, over the archs both scored, against the
  ground truth of their (shared) config."""
  if _field(a, "space.name") != _field(b, "space.name"):
    raise ValueError(f"the runs are of different spaces ({_field(a, 'space.name')!r} in {a.path}, "
                     f"{_field(b, 'space.name')!r} in {b.path})")
  archs = [x for x in a.rows if x in b.rows]
  if not archs:
    raise ValueError(f"{a.path} and {b.path} share no archs")
  names = [c for c in _SCORES if c in next(iter(a.rows.values())) and c in next(iter(b.rows.values()))]
  sections = [_truth_section(r) for r in (a, b)]
  truth = setup.truth_from_config(ml_collections.ConfigDict(sections[0]))
  # Read the second only where it is named differently (a path against a table): then compare values.
  truth_b = truth if sections[1] == sections[0] else setup.truth_from_config(ml_collections.ConfigDict(sections[1]))
  differ = [x for x in archs if x not in truth_b or truth_b.accuracy[x] != truth.accuracy[x]]
  if differ:
    raise ValueError(f"the runs' ground truths differ ({truth.source} in {a.path}, {truth_b.source} in {b.path}) "
                     f"on {len(differ)} of {len(archs)} shared archs, e.g. {differ[0]}; compare runs against "
                     "the same ground truth")
  col = lambda r, c: np.array([float(r.rows[x][c]) for x in archs], np.float64)
  table = ranking.compare_runs(archs, {c: col(a, c) for c in names}, {c: col(b, c) for c in names}, truth)
  networks = [setup.network_label(ml_collections.ConfigDict({**r.config["space"], "name": _field(r, "space.name")}))
              for r in (a, b)]
  return CompareResult(str(a.path), str(b.path), *networks, config_differences(a.config, b.config),
                       len(a.rows) - len(archs), len(b.rows) - len(archs),
                       f"{truth.source} {truth.dataset}/{truth.split}", table)


def run(config: ml_collections.ConfigDict, workdir) -> CompareResult:
  for field in ("a", "b"):
    if not config[field]:
      raise ValueError(f"set --config.{field} to a run folder (config.json and results.csv)")
  result = compare(read_run(config.a), read_run(config.b))
  workdir = pathlib.Path(workdir)
  with results.WorkdirLock(workdir):
    results.pin_config(workdir, config.to_dict())
  return result
