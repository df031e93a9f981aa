"""The absl mains as a user runs them: from the checkout and, through the
console scripts, from any directory."""

import csv
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

from experiments import launch

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


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_help_is_the_module_s(script, tmp_path):
  if shutil.which(script) is None:
    pytest.skip(f"{script} is not installed (pip install -e .)")
  module = SCRIPTS[script].split(":")[0]
  by_script = _run([script, "--help"], cwd=tmp_path)
  by_module = _run([sys.executable, "-m", module, "--help"])
  script_text, module_text = by_script.stdout + by_script.stderr, by_module.stdout + by_module.stderr
  doc = importlib.import_module(module).__doc__.strip().splitlines()[0]
  assert doc in script_text and doc in module_text
  flags = [line.split(":")[0].strip() for line in module_text.splitlines() if line.strip().startswith("--")]
  assert all(f in script_text for f in flags), (script, flags)
  if script != "ntkjax-data":  # the one script without flags
    config = importlib.import_module(f"configs.{module.split('.')[1]}").get_config()
    assert flags and "--workdir" in script_text and all(f in script_text for f in launch._fields(config))


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
