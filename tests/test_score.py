import csv
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import score as score_config
from ntkjax import data, score
from ntkjax.results import ResultsCSV
from ntkjax.spaces import nb201

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_config():
  c = score_config.get_config("small")
  c.space.num_archs = 4
  c.space.C, c.space.N = 4, 1
  c.data.batch_size = 8
  return c


def test_run_writes_rows_and_resumes(tmp_path, monkeypatch):
  c = _tiny_config()
  summary = score.run(c, tmp_path)
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(rows) == 4 and len({r["arch"] for r in rows}) == 4
  assert "lga_eval" in summary and (tmp_path / "summary.txt").exists()
  for r in rows:
    for col in score.metric_columns():
      v = float(r[col])
      assert not np.isnan(v)
    assert -1 <= float(r["lga_eval"]) <= 1 and float(r["ncn_eval"]) <= -1
    assert int(r["params"]) == nb201.num_params(r["arch"], 10, C=4, N=1)

  # Simulate an interrupt: drop the last row and leave a half-written one.
  lines = open(tmp_path / "results.csv").read().splitlines()
  with open(tmp_path / "results.csv", "w") as f:
    f.write("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
  scored = []
  real = score.score_fn

  def counting(*a, **k):
    fn = real(*a, **k)
    def wrapped(v, x, y, ops):
      scored.append(1)
      return fn(v, x, y, ops)
    return wrapped
  monkeypatch.setattr(score, "score_fn", counting)
  score.run(c, tmp_path)
  assert len(scored) == 1  # only the lost architecture is recomputed
  again = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert [r["arch"] for r in again] == [r["arch"] for r in rows[:3]] + [rows[3]["arch"]]
  for col in score.metric_columns():  # same seed, same numbers
    assert float(again[3][col]) == pytest.approx(float(rows[3][col]), rel=1e-5)


def test_changed_config_is_refused(tmp_path):
  c = _tiny_config()
  c.space.num_archs = 1
  score.run(c, tmp_path)
  c.seed = 1
  with pytest.raises(ValueError, match="different config"):
    score.run(c, tmp_path)


def test_ground_truth_gives_kendall_tau(tmp_path):
  c = _tiny_config()
  archs = [nb201.encode(o) for o in nb201.sample(jax.random.split(jax.random.key(0), 3)[2], 4)]
  gt = tmp_path / "gt.csv"
  gt.write_text("cellstr,acc\n" + "".join(f"{a},{i}\n" for i, a in enumerate(archs)))
  c.ground_truth.path, c.ground_truth.arch_column, c.ground_truth.accuracy_column = str(gt), "cellstr", "acc"
  summary = score.run(c, tmp_path / "w")
  assert "tau" in summary and "rho" in summary
  c.ground_truth.accuracy_column = "accuracy"
  with pytest.raises(ValueError, match=r"no column\(s\) \['accuracy'\]"):
    score.run(c, tmp_path / "w2")


def test_bad_config_and_dataset_names_are_refused():
  with pytest.raises(ValueError, match="'huge'"):
    score_config.get_config("huge")
  with pytest.raises(ValueError, match="'mnist'"):
    data.load("mnist")
  with pytest.raises(ValueError, match="minibatch size 5000"):
    data.select_minibatch(jax.random.key(0), data.load_digits16(), 5000)


def test_results_csv_refuses_other_columns(tmp_path):
  ResultsCSV(tmp_path / "r.csv", ["arch", "a"]).append({"arch": "x", "a": 1})
  with pytest.raises(ValueError, match="expected"):
    ResultsCSV(tmp_path / "r.csv", ["arch", "b"])


def test_experiment_main_runs_and_rejects_unknown_config_keys(tmp_path):
  base = [sys.executable, "-m", "experiments.score", "--config", "configs/score.py:small",
          "--config.space.num_archs=2", "--config.space.C=4", "--config.space.N=1",
          "--config.data.batch_size=4"]
  ok = subprocess.run(base + [f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == 2
  bad = subprocess.run(base + ["--config.space.nonsense=3", f"--workdir={tmp_path}/b"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and "nonsense" in bad.stderr


NB101_VIS = os.path.join(os.path.dirname(ROOT), "shared", "data", "nasbench101", "nb101_nasbench_vis_1k.json")


@pytest.mark.skipif(not os.path.exists(NB101_VIS), reason="../shared/data absent")
def test_score_job_on_nb101_specs_of_the_benchmark(tmp_path):
  from ntkjax.spaces import nb101
  c = score_config.get_config("small,nb101")
  c.space.num_archs, c.data.batch_size = 2, 8
  c.space.stem_channels, c.space.num_stacks = 8, 2
  summary = score.run(c, tmp_path)
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  truth, specs = score.read_truth(c.ground_truth)
  assert len(rows) == 2 and all(r["arch"] in truth for r in rows)
  for r in rows:  # keys are graph hashes; params counted for the configured network
    assert int(r["params"]) == nb101.num_params(specs[r["arch"]], stem_channels=8, num_stacks=2,
                                                modules_per_stack=1)
    assert all(np.isfinite(float(r[k])) for k in score.metric_columns())
  assert "tau" in summary


def test_score_job_on_an_nds_space_compiles_per_arch(tmp_path):
  from ntkjax.spaces import nds
  c = score_config.get_config("small,nds_enas")
  c.space.num_archs, c.data.batch_size, c.space.width, c.space.depth = 2, 8, 4, 3
  score.run(c, tmp_path)
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(rows) == 2
  for r in rows:
    arch = nds.decode(r["arch"], "enas")
    assert (arch.width, arch.depth) == (4, 3) and int(r["params"]) == nds.num_params(arch)
    assert float(r["fnorm_eval"]) > 0 and -1 <= float(r["lga_eval"]) <= 1
  with pytest.raises(ValueError, match="unknown NDS space 'foo'"):
    c2 = score_config.get_config("small")
    c2.space.name = "nds_foo"
    score.run(c2, tmp_path / "bad")
  with pytest.raises(ValueError, match="space 'nb101' samples from a benchmark"):
    c3 = score_config.get_config("small")
    c3.space.name = "nb101"
    score.run(c3, tmp_path / "bad2")
