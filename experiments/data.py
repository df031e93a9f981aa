"""What data each experiment finds before it runs: the data homes, every
dataset and benchmark table (present, or where it goes and where to get it),
and which config variants are ready.

    ntkjax-data                                  # everything
    ntkjax-data rank_correlation:full,cifar100   # one config variant, with the reason if not ready
    python -m experiments.data score:nb101

Nothing is read or written: it looks for the files the configs name
(``ntkjax.data_home``; ``NTKJAX_DATA`` sets the home).
"""

from __future__ import annotations

import importlib
import itertools
import pathlib
import sys

from absl import app

from ntkjax import data_home
from ntkjax.configs import common
from ntkjax.studies import setup

from . import launch

STUDIES = tuple(sorted(p.stem for p in launch.CONFIGS.glob("*.py") if p.stem not in ("__init__", "common")))


def _config(study: str, variant: str):
  if study not in STUDIES:
    raise ValueError(f"unknown experiment {study!r}; known: {', '.join(STUDIES)}")
  return importlib.import_module(f"ntkjax.configs.{study}").get_config(variant)


def _matrix(study: str) -> dict[tuple[str, str], str]:
  """(space, dataset) -> 'ok' or what is missing, for every space the
  study runs on (sizes read the same data once the dataset is named)."""
  out = {}
  for space, dataset in itertools.product(common.SPACES, common.DATASETS):
    try:
      config = _config(study, f"{dataset},{space}")
    except ValueError:  # a space the study does not run on
      continue
    absent = [i.what for i in setup.inputs(config) if i.path is None]
    out[(space, dataset)] = "ok" if not absent else "--"
  return out


def report_variant(study: str, variant: str) -> tuple[bool, str]:
  missing = [i for i in setup.inputs(_config(study, variant)) if i.path is None]
  return not missing, "; ".join(i.error for i in missing)


def overview() -> str:
  lines = ["Data homes, searched in order: " + ", ".join(str(h) for h in data_home.homes())
           + f"  (set {data_home.ENV} to use your own)", "", "Datasets and benchmark tables:"]
  for s in data_home.status():
    where = str(s.path) if s.path else f"put it at {s.expected}; get {s.official}"
    lines.append(f"  {'present' if s.path else 'MISSING':<8} {s.name:<15} {where}")
  groups: dict[tuple, list[str]] = {}
  for study in STUDIES:
    groups.setdefault(tuple(sorted(_matrix(study).items())), []).append(study)
  without = groups.pop((), [])  # e.g. compare, which reads finished runs
  lines += ["", "Config variants ready (ok) or missing data (--), by space and dataset "
            "(`ntkjax-data STUDY:VARIANT` says what is missing):"]
  for matrix, studies in groups.items():
    cells = dict(matrix)
    lines += ["", "  " + ", ".join(studies), f"    {'':<12}" + "".join(f"{d:>12}" for d in common.DATASETS)]
    for space in dict.fromkeys(sp for sp, _ in cells):
      lines.append(f"    {space:<12}" + "".join(f"{cells.get((space, d), ''):>12}" for d in common.DATASETS))
  if without:
    lines += ["", f"  {', '.join(without)}: no dataset or benchmark table of its own (it reads finished runs)"]
  return "\n".join(lines)


def _main(argv):
  if len(argv) == 1:
    print(overview())
    return
  ok = True
  for arg in argv[1:]:
    study, _, variant = arg.partition(":")
    try:
      ready, why = report_variant(study, variant)
    except ValueError as e:
      print(f"{pathlib.Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
      sys.exit(2)
    ok &= ready
    print(f"{'ready' if ready else 'MISSING':<8} {arg}" + ("" if ready else f": {why}"))
  sys.exit(0 if ok else 1)


def main():
  launch.as_main(__name__)
  app.run(_main)


if __name__ == "__main__":
  main()
