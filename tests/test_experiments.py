"""The absl mains as a user runs them: from the checkout and, through the
console scripts, from any directory."""

import csv
import importlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from ntkjax.experiments import launch

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--config.space.num_archs=2", "--config.space.C=4", "--config.space.N=1", "--config.data.batch_size=4"]


def _run(args, cwd=ROOT, timeout=600):
  return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_score_main_runs_lists_its_files_and_rejects_unknown_keys(tmp_path):
  base = [sys.executable, "-m", "experiments.score", "--config", "configs/score.py:small"] + TINY
  ok = _run(base + [f"--workdir={tmp_path}"])
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == 2
  tail = ok.stdout[ok.stdout.index("Files written in"):]
  assert str(tmp_path.resolve()) in tail
  for name in ("config.json", "minibatch.csv", "results.csv", "summary.txt"):
    assert f"  {name}\n" in tail
  bad = _run(base + ["--config.space.nonsense=3", f"--workdir={tmp_path}/b"])
  assert bad.returncode != 0 and "nonsense" in bad.stderr


def test_a_bad_path_is_one_clear_line_and_the_workdir_stays_reusable(tmp_path):
  base = [sys.executable, "-m", "experiments.score", "--config", "configs/score.py:small,cifar10"] + TINY
  bad = _run(base + ["--config.data.root=/nowhere/cifar", f"--workdir={tmp_path}"])
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == "score.py: error: cifar10 root /nowhere/cifar does not exist"
  assert not (tmp_path / "config.json").exists()
  home = tmp_path / "empty_home"
  home.mkdir()
  missing = subprocess.run(base + [f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "NTKJAX_DATA": str(home)})
  assert missing.returncode == 2
  line = missing.stderr.strip().splitlines()[-1]
  assert line.startswith("score.py: error: CIFAR-10 images not found: expected ") and "cifar-10-python.tar.gz" in line
  assert not (tmp_path / "config.json").exists()


SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _defined_flags(module: str) -> set[str]:
  """The flags a main defines: its own ``flags.DEFINE_*`` calls and, through
  ``launch.main``, the launcher's (read from the sources, not from a run)."""
  sources = [pathlib.Path(importlib.import_module(module).__file__).read_text()]
  if "launch.main(" in sources[0]:
    sources.append(pathlib.Path(launch.__file__).read_text())
  return {f"--{name}" for src in sources for name in re.findall(r'DEFINE_\w+\(\s*"(\w+)"', src)}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_help_is_the_module_s(script, tmp_path):
  # Run from another directory: the script's help is its module's docstring,
  # every flag the module defines and every field of its config.
  if shutil.which(script) is None:
    pytest.skip(f"{script} is not installed (pip install -e .)")
  module = SCRIPTS[script].split(":")[0]
  out = _run([script, "--help"], cwd=tmp_path)
  text = out.stdout + out.stderr
  doc = importlib.import_module(module).__doc__.strip().splitlines()[0]
  assert doc in text
  flags = _defined_flags(module)
  shown = lambda f: f in text or f.replace("--", "--[no]", 1) in text  # absl shows a bool as --[no]name
  assert all(shown(f) for f in flags), (script, sorted(f for f in flags if not shown(f)))
  if script != "ntkjax-data":  # the one script without a config
    config = importlib.import_module(f"ntkjax.configs.{module.rsplit('.', 1)[1]}").get_config()
    assert {"--config", "--workdir", "--plan"} <= flags
    assert all(f in text for f in launch._fields(config))


def test_a_config_typo_is_one_line_and_writes_nothing(tmp_path):
  typo = _run([sys.executable, "-m", "experiments.score", f"--workdir={tmp_path / 'w'}", "--config",
               "configs/score.py:small", "--config.data.batch_sise=8"])
  assert typo.returncode == 2 and typo.stderr.strip().splitlines() == [
      "score.py: error: --config.data.batch_sise: no such config field; did you mean data.batch_size?"]
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_bad_variant_or_config_file_is_one_line_and_writes_nothing(tmp_path):
  base = [sys.executable, "-m", "experiments.score", f"--workdir={tmp_path / 'w'}", "--config"]
  variant, missing = _run(base + ["smal"]), _run(base + ["configs/nope.py"])
  assert (variant.returncode, missing.returncode) == (2, 2)
  assert len(variant.stderr.strip().splitlines()) == 1
  assert "error: flag --config=" in variant.stderr and "unknown config variant 'smal'; known: small" in variant.stderr
  assert missing.stderr.strip().splitlines() == [
      "score.py: error: --config: [Errno 2] No such file or directory: 'configs/nope.py'"]
  assert not (tmp_path / "w").exists()


def test_help_lists_the_flags_and_the_config_fields():
  out = _run([sys.executable, "-m", "experiments.rank_correlation", "--help"])  # absl exits 1 after help
  text = out.stdout + out.stderr
  for word in ("--config", "--workdir", "space.num_archs", "ntk.implementation", "ground_truth.path"):
    assert word in text, word


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ntkjax-score") is None, reason="not installed (pip install -e .)")
def test_console_script_runs_from_any_directory_with_a_bare_variant(tmp_path):
  out = _run(["ntkjax-score", "--config", "small"] + TINY + [f"--workdir={tmp_path / 'w'}"], cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert (tmp_path / "w" / "results.csv").exists()


def test_a_busy_workdir_is_refused_with_the_holders_pid(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; from ntkjax.results import WorkdirLock\n"
      f"l = WorkdirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    out = _run([sys.executable, "-m", "experiments.score", "--config", "configs/score.py:small"] + TINY +
               [f"--workdir={tmp_path}"])
    assert out.returncode == 2 and f"in use by another run (pid {holder.pid}" in out.stderr
  finally:
    holder.kill()
    holder.wait()
  assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_the_wheel_installs_only_the_ntkjax_package(tmp_path):
  # The mains and configs ship as ntkjax.experiments and ntkjax.configs, so no
  # top-level `configs` or `experiments` lands in site-packages.
  pytest.importorskip("setuptools")
  out = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
              str(ROOT)])
  assert out.returncode == 0, out.stderr[-2000:]
  (wheel,) = tmp_path.glob("ntkjax-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"ntkjax"}
  entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
  scripts = dict(line.split(" = ") for line in zipfile.ZipFile(wheel).read(entry_points).decode().splitlines()
                 if " = " in line)
  assert scripts.keys() == SCRIPTS.keys()
  for target in scripts.values():
    module = target.split(":")[0]
    assert module.startswith("ntkjax.experiments.") and module.replace(".", "/") + ".py" in names, target
  for config in (ROOT / "configs").glob("*.py"):
    assert f"ntkjax/configs/{config.name}" in names
