"""The absl entry point every experiment shares.

``main(run, 'score.py')`` defines ``--config`` (an ml_collections config
file, locked so unknown keys are errors; by default the experiment's file in
``configs/``, and a bare variant such as ``--config small,nb101`` picks that
variant of it), ``--workdir``, ``--compilation_cache`` (JAX's persistent
compilation cache, off unless given) and ``--plan`` (print the study's cost
on this device, ``ntkjax.studies.plan``, and write nothing), logs the config
at ``--verbosity=1`` (the workdir's ``config.json`` holds it), calls the study's
``run(config, workdir)`` and then prints and writes its result: the summary
(also ``summary.txt``), its tables (CSV) and figures (PNG), and the list of
files the run wrote. Errors in what the user gave (a path, a config value or
field, a busy workdir) end the run with one ``error:`` line naming the
problem and exit status 2, before anything is written; an interrupt ends it
with one line saying what is saved and that the same command resumes.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import pathlib
import sys
import time
from typing import Callable

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from ntkjax import ground_truth, provenance, results
from ntkjax.studies import plan, setup

flags.disclaim_key_flags()  # flags defined here are the calling experiment's: --help lists them

# The experiments' configs: configs/ beside experiments/ in a checkout, ntkjax/configs in a wheel.
CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _load_config(config_file: pathlib.Path, variant: str | None = None):
  """``get_config(variant)`` of a config file, and the file's docstring."""
  spec = importlib.util.spec_from_file_location(f"_config_{config_file.stem}", config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant), (module.__doc__ or "").strip()


def _config_help(config_file: pathlib.Path) -> str:
  config, doc = _load_config(config_file)
  fields = sorted(_fields(config))
  return (f"Config file (default {config_file}), optionally with ':variant' (e.g. :small,nb101); a bare "
          f"variant picks it from the default file. {doc.splitlines()[0]} Override fields with "
          "--config.<field>=value: " + ", ".join(fields))


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


def _fail(message: str, status: int = 2):
  print(f"{pathlib.Path(sys.argv[0]).name}: {message}", file=sys.stderr)
  sys.exit(status)


def execute(run: Callable, config, workdir: pathlib.Path):
  """``run(config, workdir)`` once the config's values and the workdir are
  checked. A ``USER_ERRORS`` error ends the process with one ``error:`` line
  on stderr and exit status 2; an interrupt with one line saying how many
  result rows are saved (exit status 130)."""
  try:
    if workdir.exists() and not workdir.is_dir():
      raise ValueError(f"--workdir {workdir} is a file; give a directory (it is created if missing)")
    setup.check_config(config)
    logging.debug("config:\n%s", config)  # --verbosity=1; the workdir's config.json has it too
    return run(config, workdir)
  except USER_ERRORS as e:
    logging.debug("run failed", exc_info=True)
    if isinstance(e, plan.DoesNotFit):  # what a refused plan measured, before why it refused
      print(e.measured.summary(), flush=True)
    _fail(f"error: {e}")
  except KeyboardInterrupt:
    _interrupted(workdir)


def _interrupted(workdir: pathlib.Path):
  """Ends the process after Ctrl-C with one line saying what is saved."""
  rows = results.saved_rows(workdir) if workdir.is_dir() else 0
  print(f"{pathlib.Path(sys.argv[0]).name}: interrupted: {rows} result rows are saved in {workdir}; "
        "run the same command to resume from them", file=sys.stderr)
  # The unwound stack has closed the result files and released the lock; a
  # normal interpreter exit can crash (SIGSEGV) while XLA still compiles in
  # its own threads, so leave without finalisation.
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(130)


def _unknown_override(argv: list[str], default: pathlib.Path | None = None) -> str | None:
  """The first ``--config.<field>=`` override in ``argv`` that names no
  field of the config it applies to (``default`` without ``--config``), as
  an error message."""
  config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if config_arg is None and "--config" in argv[:-1]:
    config_arg = argv[argv.index("--config") + 1]
  config_arg = config_arg or (str(default) if default else None)
  if config_arg is None:
    return None
  path, _, variant = config_arg.partition(":")
  try:
    known = set(_fields(_load_config(pathlib.Path(path), variant or None)[0]))
  except Exception:  # the config itself failed: its own error is the one to report
    return None
  for a in argv:
    if a.startswith("--config."):
      field = a[len("--config."):].split("=", 1)[0]
      if field not in known:
        close = difflib.get_close_matches(field, known, n=1)
        return f"--config.{field}: no such config field" + (f"; did you mean {close[0]}?" if close else "")
  return None


def _parse_flags(argv: list[str], default: pathlib.Path | None = None) -> list[str]:
  """absl's flag parsing, with a bad flag, config file, variant or field
  reported in one ``error:`` line (exit status 2) instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except _FLAG_ERRORS as e:
    _flag_error(e, argv, default)


# What a bad flag, config file, variant or field raises while flags are parsed.
_FLAG_ERRORS = (flags.Error, AttributeError, KeyError, TypeError, ValueError)


def _flag_error(e: BaseException, argv: list[str], default: pathlib.Path | None):
  message = _unknown_override(argv, default) or _first_lines(e)[0]
  if message.endswith(":"):  # absl wrapping the config file's own error: report that one
    message = f"{message.split(': ')[0]}: {_first_lines(e)[-1]}"
  _fail(f"error: {message}")


def _first_lines(e: BaseException) -> list[str]:
  """The first line of each message along an exception's chain, outermost first."""
  chain = [e]
  while chain[-1].__cause__ or chain[-1].__context__:
    chain.append(chain[-1].__cause__ or chain[-1].__context__)
  return [str(x).strip().splitlines()[0] for x in chain if str(x).strip()]


def as_main(module_name: str) -> None:
  """Makes ``--help`` of a console script (whose ``__main__`` is a generated
  wrapper) show ``module_name``'s docstring and flags, as ``python -m`` does."""
  if module_name == "__main__":
    return
  sys.modules["__main__"].__doc__ = sys.modules[module_name].__doc__
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def main(run: Callable, config_name: str, plan_fn: Callable | None = None) -> None:
  """Runs ``run(config, workdir)`` from the command line; ``--plan`` prints
  ``plan_fn(config)`` (default: the study's ``plan.plan``)."""
  default = CONFIGS / config_name
  try:  # overrides of the default config are applied here, as it is defined
    config_flag = config_flags.DEFINE_config_file("config", str(default), _config_help(default), lock_config=True)
  except _FLAG_ERRORS as e:
    _flag_error(e, sys.argv, default)
  workdir_flag = flags.DEFINE_string("workdir", None, "Directory for results (resumed if it exists).")
  cache_flag = flags.DEFINE_string(
      "compilation_cache", None, "Directory of JAX's persistent compilation cache (jax_compilation_cache_dir; "
      "the JAX_COMPILATION_CACHE_DIR variable sets it too): a rerun of networks and shapes compiled before "
      "loads their executables instead of compiling them (BENCHMARKS.md, 'Compile against run').")
  plan_flag = flags.DEFINE_bool(
      "plan", False, "Print the study's plan and write nothing: per jitted function its FLOPs, device memory, "
      "compile time, call time and chunking on this device, whether it fits, and the projected wall time; "
      "a config that cannot fit is an error naming the function.")
  flags.mark_flags_as_required(["workdir"])
  _resolve_config_argument(sys.argv, default)
  as_main(sys._getframe(1).f_globals["__name__"])

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = config_flag.value
    try:
      config.keys()  # a config file that failed to load raises when first read
    except OSError as e:
      _fail(f"error: --config: {str(e).strip().splitlines()[-1].strip()}")
    workdir = pathlib.Path(workdir_flag.value)
    if cache_flag.value:
      jax.config.update("jax_compilation_cache_dir", cache_flag.value)
    if plan_flag.value:
      study = pathlib.Path(config_name).stem
      planner = plan_fn or (lambda c: plan.plan(c, study))
      print(execute(lambda c, _: planner(c), config, workdir).summary())
      return
    before = _snapshot(workdir)
    start = time.time()
    result = execute(run, config, workdir)
    try:
      write_outputs(result, getattr(result, "output_dir", None) or workdir)
    except KeyboardInterrupt:
      _interrupted(workdir)
    print(result.summary())
    after = _snapshot(workdir)
    written = sorted(p for p, m in after.items() if before.get(p) != m and p.name != results.LOCK_FILE)
    print(f"\nDone in {time.time() - start:.0f}s. Files written in {workdir.resolve()}:")
    for p in written:
      print(f"  {p.relative_to(workdir)}")
  app.run(_main, flags_parser=lambda argv: _parse_flags(argv, default))
