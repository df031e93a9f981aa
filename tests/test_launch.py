"""The shared absl launcher: user errors are one line, bugs keep their
traceback."""

import pathlib
import subprocess
import sys

import pytest

from ntkjax import ground_truth
from ntkjax.configs import score as score_config
from ntkjax.experiments import launch

CONFIG = score_config.get_config("small")
REPO = pathlib.Path(__file__).resolve().parents[1]


def _raising(error):
  def run(config, workdir):
    raise error
  return run


def test_a_user_error_is_one_line_and_exit_status_2(capsys, tmp_path):
  for error in (ValueError("bad value"), FileNotFoundError("no such file"),
                ground_truth.NotInGroundTruth("|x| is not in the ground truth t.csv")):
    with pytest.raises(SystemExit) as e:
      launch.execute(_raising(error), CONFIG, tmp_path)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"error: {error}") and "'" not in err[0].split("error: ")[1][:1]


def test_a_bug_keeps_its_traceback(tmp_path):
  with pytest.raises(KeyError, match="internal"):
    launch.execute(_raising(KeyError("internal")), CONFIG, tmp_path)
  assert launch.execute(lambda c, w: (c, w), CONFIG, tmp_path) == (CONFIG, tmp_path)


def _configs():
  import importlib
  for name in ("score", "rank_correlation", "deciles", "init_schemes", "post_training", "kernel_evolution",
               "trajectories", "search", "sweep"):
    yield name, importlib.import_module(f"ntkjax.configs.{name}").get_config("small")


def test_every_numeric_field_with_a_range_is_checked():
  from ntkjax.studies import setup
  checked = set()
  for name, config in _configs():
    setup.check_config(config)  # every shipped config is valid
    for path in setup.RANGES:
      *parents, leaf = path.split(".")
      node = config
      if any(p not in node or not hasattr(node := node[p], "items") for p in parents) or leaf not in node:
        continue
      bad = config.copy_and_resolve_references()
      holder = bad
      for p in parents:
        holder = holder[p]
      holder[leaf] = (-1,) if isinstance(holder[leaf], tuple) else -1
      with pytest.raises(ValueError, match=rf"^{path} = \(?-1(\.0)?,?\)? is out of range: it must be "):
        setup.check_config(bad)
      checked.add(path)
  assert checked == set(setup.RANGES)


def test_knas_ks_is_checked_only_when_knas_runs():
  from ntkjax.configs import search as search_config
  from ntkjax.studies import setup
  c = search_config.get_config("small")
  c.rs.num_archs, c.knas.ks = 3, (2, 5)
  setup.check_config(c)  # the small variant runs rs and rea only
  c.methods = ("rs", "knas")
  with pytest.raises(ValueError, match=r"^knas.ks = \(2, 5\) is out of range: each k must be an integer in "
                                       r"\[1, rs.num_archs = 3\]"):
    setup.check_config(c)
  c.knas.ks = (1, 3)
  setup.check_config(c)


def test_proxies_a_space_cannot_compute_are_refused_before_the_run():
  from ntkjax.configs import common, rank_correlation
  from ntkjax.studies import setup
  assert "flops" in common.space_proxies("nb101") and "flops" not in common.space_proxies("nds_darts")
  c = rank_correlation.get_config("cpu,nds_darts")
  assert "flops" not in c.proxies and "synflow" in c.proxies
  setup.check_config(c)
  c.proxies = ("flops", "snip")
  with pytest.raises(ValueError, match=r"^proxy 'flops' is not counted for space 'nds_darts' \(only for nb201, "):
    setup.check_config(c)
  c = rank_correlation.get_config("cpu,nb101")
  c.space.masked = True
  with pytest.raises(ValueError, match=r"^proxy 'nwot' needs the per-graph NB101 network"):
    setup.check_config(c)
  c.proxies = ("snip", "synflow")
  setup.check_config(c)
  c = rank_correlation.get_config("cpu,nds_darts")
  c.space.masked = True
  with pytest.raises(ValueError, match=r"^proxy 'synflow' needs the per-genotype NDS network"):
    setup.check_config(c)
  c.proxies = ("params",)
  setup.check_config(c)


def test_out_of_range_values_and_a_file_workdir_stop_before_anything_is_written(capsys, tmp_path):
  config = score_config.get_config("small")
  config.space.num_archs = -5
  ran = []
  with pytest.raises(SystemExit) as e:
    launch.execute(lambda c, w: ran.append(1), config, tmp_path / "w")
  assert e.value.code == 2 and not ran and not (tmp_path / "w").exists()
  assert capsys.readouterr().err.strip().endswith("error: space.num_archs = -5 is out of range: it must be an "
                                                  "integer >= 1")
  (tmp_path / "file").write_text("x")
  with pytest.raises(SystemExit):
    launch.execute(lambda c, w: ran.append(1), score_config.get_config("small"), tmp_path / "file")
  err = capsys.readouterr().err
  assert f"--workdir {tmp_path / 'file'} is a file" in err and not ran


def test_an_unknown_config_field_is_named_with_the_nearest_one():
  args = ["prog", "--config=configs/score.py:small", "--config.data.batch_sise=8", "--workdir=W"]
  assert launch._unknown_override(args) == "--config.data.batch_sise: no such config field; did you mean " \
                                           "data.batch_size?"
  assert launch._unknown_override(["prog", "--config", "configs/score.py", "--config.space.C=4"]) is None
  default = launch.CONFIGS / "score.py"
  assert launch._unknown_override(["prog", "--config.spce.C=4"], default).startswith("--config.spce.C: no such")


_INTERRUPTED_RUN = """
import os, pathlib, signal, sys
from ntkjax.configs import score as score_config
from ntkjax.experiments import launch
from ntkjax import results

def run(config, workdir):
  with results.WorkdirLock(workdir):
    (workdir / "results.csv").write_text("arch,x\\na,1\\nb,2\\n")
    (workdir / "minibatch.csv").write_text("index,label\\n1,2\\n")
    os.kill(os.getpid(), signal.SIGINT)

# Python raises KeyboardInterrupt on SIGINT only where the signal was not ignored when it started, and a
# shell's background job (`pytest ... &`) starts with it ignored: install the handler a terminal gives.
signal.signal(signal.SIGINT, signal.default_int_handler)
launch.execute(run, score_config.get_config("small"), pathlib.Path(sys.argv[1]))
"""


def test_an_interrupt_says_what_is_saved_and_that_the_command_resumes(tmp_path):
  workdir = tmp_path / "w"
  done = subprocess.run([sys.executable, "-c", _INTERRUPTED_RUN, str(workdir)], capture_output=True, text=True,
                        cwd=REPO, timeout=120)
  assert done.returncode == 130, done.stderr
  err = done.stderr.strip().splitlines()
  assert err[-1].endswith(f"interrupted: 2 result rows are saved in {workdir}; run the same command to resume "
                          "from them")
  assert "Traceback" not in done.stderr
  assert not (workdir / ".lock").exists()
