"""The absl entry point every experiment shares.

``main(run, 'score.py')`` defines ``--config`` (an ml_collections config
file, locked so unknown keys are errors; by default the experiment's file in
``configs/``, and a bare variant such as ``--config small,nb101`` picks that
variant of it) and ``--workdir``, logs the config, calls the study's
``run(config, workdir)`` and then prints and writes its result: the summary
(also ``summary.txt``), its tables (CSV) and figures (PNG), and the list of
files the run wrote. Errors in what the user gave (a path, a config value, a
busy workdir) end the run with one line naming the problem.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import time
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

import configs
from ntkjax import ground_truth, provenance, results
from ntkjax.studies import setup

flags.disclaim_key_flags()  # flags defined here are the calling experiment's: --help lists them

CONFIGS = pathlib.Path(configs.__file__).resolve().parent


def _config_help(config_file: pathlib.Path) -> str:
  spec = importlib.util.spec_from_file_location(f"_config_{config_file.stem}", config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  fields = sorted(_fields(module.get_config()))
  doc = (module.__doc__ or "").strip().splitlines()[0]
  return (f"Config file (default {config_file}), optionally with ':variant' (e.g. :small,nb101); a bare "
          f"variant picks it from the default file. {doc} Override fields with --config.<field>=value: "
          + ", ".join(fields))


def _fields(config, prefix=""):
  for k, v in config.items():
    if hasattr(v, "items"):
      yield from _fields(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}"


def _resolve_config_argument(argv: list[str], default: pathlib.Path) -> None:
  """``--config small,nb101`` (not a file) -> ``--config <default>:small,nb101``."""
  for i, a in enumerate(argv):
    value, where = None, None
    if a.startswith("--config="):
      value, where = a[len("--config="):], "inline"
    elif a == "--config" and i + 1 < len(argv):
      value, where = argv[i + 1], "next"
    if value is None:
      continue
    path = value.split(":", 1)[0]
    if path and (path.endswith(".py") or os.sep in path or os.path.exists(path)):
      continue
    resolved = f"{default}:{value.lstrip(':')}"
    if where == "inline":
      argv[i] = f"--config={resolved}"
    else:
      argv[i + 1] = resolved


def _snapshot(workdir: pathlib.Path) -> dict[pathlib.Path, float]:
  if not workdir.exists():
    return {}
  return {p: p.stat().st_mtime for p in workdir.rglob("*") if p.is_file()}


def write_outputs(result: setup.StudyResult, workdir: pathlib.Path) -> list[pathlib.Path]:
  """Writes the result's summary, tables and figures into ``workdir``."""
  summary = workdir / "summary.txt"
  summary.write_text(f"{result.summary()}\n\n{provenance.describe()}\n")
  paths = [summary]
  for name, (rows, fields) in result.tables().items():
    paths.append(results.write_csv(workdir / name, rows, fields))
  for name, draw in result.figures().items():
    paths.append(draw(workdir / name))
  return paths


# What a user can fix (a path, a config value, a busy workdir): one line, exit 2.
# Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, ground_truth.NotInGroundTruth, FileNotFoundError, results.WorkdirInUse)


def execute(run: Callable, config, workdir: pathlib.Path):
  """``run(config, workdir)``; a ``USER_ERRORS`` error ends the process
  with one ``error:`` line on stderr and exit status 2."""
  try:
    return run(config, workdir)
  except USER_ERRORS as e:
    logging.debug("run failed", exc_info=True)
    print(f"{pathlib.Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
    sys.exit(2)


def main(run: Callable, config_name: str) -> None:
  """Runs ``run(config, workdir)`` from the command line."""
  default = CONFIGS / config_name
  config_flag = config_flags.DEFINE_config_file("config", str(default), _config_help(default), lock_config=True)
  workdir_flag = flags.DEFINE_string("workdir", None, "Directory for results (resumed if it exists).")
  flags.mark_flags_as_required(["workdir"])
  _resolve_config_argument(sys.argv, default)

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config, workdir = config_flag.value, pathlib.Path(workdir_flag.value)
    logging.info("config:\n%s", config)
    before = _snapshot(workdir)
    start = time.time()
    result = execute(run, config, workdir)
    write_outputs(result, getattr(result, "output_dir", None) or workdir)
    print(result.summary())
    after = _snapshot(workdir)
    written = sorted(p for p, m in after.items() if before.get(p) != m and p.name != results.LOCK_FILE)
    print(f"\nDone in {time.time() - start:.0f}s. Files written in {workdir.resolve()}:")
    for p in written:
      print(f"  {p.relative_to(workdir)}")
  app.run(_main)
