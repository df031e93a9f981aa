"""The Section 3.2-3.4 studies: correlation tables, and the three runners on
a tiny network with a synthetic ground truth covering all of NB201."""

import csv
import pathlib
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.stats

from configs import common
from configs import deciles as deciles_config
from configs import init_schemes as init_config
from configs import rank_correlation as rc_config
from ntkjax import benchmarks, correlation, score
from ntkjax.spaces import nb201

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = nb201.all_archs()


def _tiny(cfg, truth_csv):
  cfg.space.C, cfg.space.N = 4, 1
  cfg.data.name, cfg.data.root, cfg.data.batch_size = "digits16", "", 8
  cfg.ground_truth.path = str(truth_csv)
  cfg.ground_truth.arch_column, cfg.ground_truth.accuracy_column = "arch", "acc"
  cfg.ground_truth.index_column = "idx"
  return cfg


def _rows(archs, **cols):
  return [{"arch": a, "degenerate": str(int(nb201.is_degenerate(a))), **{k: str(v[i]) for k, v in cols.items()}}
          for i, a in enumerate(archs)]


def test_correlations_against_scipy_and_subsets():
  archs = [a for a in ARCHS[:400]][::4]
  acc = np.linspace(50, 90, len(archs))
  gt = benchmarks.GroundTruth(dict(zip(archs, acc)), {}, "cifar10-valid", "test", 200, "synthetic")
  noisy = acc + np.random.default_rng(1).normal(0, 10, len(archs))
  rows = _rows(archs, perfect=acc, reversed=-acc, noisy=noisy)
  table = correlation.correlations(rows, ["perfect", "reversed", "noisy"], gt, random_key=jax.random.key(0))
  get = {(r["metric"], r["subset"]): r for r in table}
  assert get[("perfect", "all")]["tau"] == pytest.approx(1.0)
  assert get[("reversed", "all")]["tau"] == pytest.approx(-1.0)
  assert get[("noisy", "all")]["tau"] == pytest.approx(scipy.stats.kendalltau(noisy, acc)[0])
  assert get[("noisy", "all")]["rho"] == pytest.approx(scipy.stats.spearmanr(noisy, acc)[0])
  degen = np.array([nb201.is_degenerate(a) for a in archs])
  assert 0 < degen.sum() and get[("noisy", "all")]["n_degenerate"] == degen.sum()
  keep = ~degen
  assert get[("noisy", "non_degenerate")]["n"] == keep.sum()
  assert get[("noisy", "non_degenerate")]["tau"] == pytest.approx(scipy.stats.kendalltau(noisy[keep], acc[keep])[0])
  assert abs(get[("random", "all")]["tau"]) < 0.3
  with pytest.raises(KeyError, match="not in synthetic"):
    correlation.correlations(_rows(ARCHS[1:2] + archs, x=np.r_[0, acc]), ["x"], gt)


def test_random_baseline_is_reproducible_and_order_free():
  a = correlation.random_scores(jax.random.key(3), ARCHS[:5])
  b = correlation.random_scores(jax.random.key(3), ARCHS[:5][::-1])
  np.testing.assert_array_equal(a, b[::-1])
  assert len(set(a)) == 5 and np.all((a >= 0) & (a < 1))
  assert not np.array_equal(a, correlation.random_scores(jax.random.key(4), ARCHS[:5]))


def test_rank_correlation_run_and_resume(tmp_path, truth_csv, monkeypatch):
  c = _tiny(rc_config.get_config("small"), truth_csv)
  c.space.num_archs = 5
  c.space.sampling = "index_order"
  table = correlation.run_rank_correlation(c, tmp_path)
  for f in ("correlations.csv", "summary.txt", "rank_correlation.png", "archs.txt", "minibatch.csv",
            "results.csv", "config.json"):
    assert (tmp_path / f).stat().st_size > 0, f
  gt = benchmarks.read_csv(truth_csv, arch_column="arch", accuracy_column="acc", index_column="idx")
  archs = (tmp_path / "archs.txt").read_text().split()
  assert [gt.index[a] for a in archs] == [0, 1, 2, 3, 4]  # the first official indices
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  params = np.array([float(r["params"]) for r in rows])
  want = scipy.stats.kendalltau(params, gt.lookup(archs))[0]
  got = [r for r in table if r["metric"] == "params" and r["subset"] == "all"][0]["tau"]
  assert got == pytest.approx(want)
  assert {r["metric"] for r in table} == set(score.metric_columns()) | {"params", "random"}
  calls = []
  monkeypatch.setattr(score, "score_fn", lambda *a, **k: calls.append(1))
  again = correlation.run_rank_correlation(c, tmp_path)  # everything is on disk: nothing to score
  assert not calls and again == table


def test_deciles_run(tmp_path, truth_csv):
  c = _tiny(deciles_config.get_config("small"), truth_csv)
  c.per_decile, c.num_seeds = 3, 2
  result = correlation.run_deciles(c, tmp_path)
  assert (tmp_path / "deciles.png").stat().st_size > 0
  labels = {r["decile"] for r in result}
  assert labels == {str(k) for k in range(1, 11)} | {"Total"}
  totals = [r for r in result if r["decile"] == "Total" and r["subset"] == "all" and r["metric"] == "lga_eval"]
  assert [r["n"] for r in totals] == [30, 30]
  scored = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(scored) == len({r["arch"] for r in scored}) <= 60


def test_init_schemes_run(tmp_path, truth_csv):
  c = _tiny(init_config.get_config("small"), truth_csv)
  c.space.num_archs, c.schemes = 4, ("xavier", "kaiming")
  result = correlation.run_init_schemes(c, tmp_path)
  assert {r["init"] for r in result} == {"xavier", "kaiming"}
  x = list(csv.DictReader(open(tmp_path / "results_xavier.csv")))
  k = list(csv.DictReader(open(tmp_path / "results_kaiming.csv")))
  assert [r["arch"] for r in x] == [r["arch"] for r in k]
  assert any(r1["fnorm_eval"] != r2["fnorm_eval"] for r1, r2 in zip(x, k))  # the scheme matters


def test_configs_parse_and_refuse_unknown_variants():
  for mod in (rc_config, deciles_config, init_config):
    for arg in (None, "cpu", "small", "small,paper_code", "cifar100", "imagenet16,cpu"):
      mod.get_config(arg)
  c = rc_config.get_config("cpu,paper_code")
  assert (c.space.variant, c.ntk.param_filter, c.metrics.compat) == ("paper_code",) * 3
  assert rc_config.get_config("imagenet16").data.batch_size == 512
  with pytest.raises(ValueError, match="'cifar-10'"):
    common.parse("small,cifar-10")


def test_missing_ground_truth_and_bad_sampling(tmp_path, truth_csv):
  c = _tiny(rc_config.get_config("small"), truth_csv)
  c.ground_truth.path = ""
  with pytest.raises(ValueError, match="needs ground_truth.path"):
    correlation.run_rank_correlation(c, tmp_path / "a")
  c = _tiny(rc_config.get_config("small"), truth_csv)
  c.space.sampling = "best_first"
  with pytest.raises(ValueError, match="'best_first'"):
    correlation.run_rank_correlation(c, tmp_path / "b")


def test_experiment_main_runs(tmp_path, truth_csv):
  cmd = [sys.executable, "-m", "experiments.init_schemes", "--config", "configs/init_schemes.py:small",
         "--config.space.num_archs=3", "--config.space.C=4", "--config.space.N=1",
         "--config.data.name=digits16", "--config.data.batch_size=8", "--config.schemes=('xavier',)",
         f"--config.ground_truth.path={truth_csv}", "--config.ground_truth.arch_column=arch",
         "--config.ground_truth.accuracy_column=acc", "--config.ground_truth.index_column=idx",
         f"--workdir={tmp_path}"]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Kendall tau by init scheme" in out.stdout
  assert (tmp_path / "init_schemes.csv").exists()


NB101_VIS = pathlib.Path(__file__).resolve().parents[2] / "shared/data/nasbench101/nb101_nasbench_vis_1k.json"


@pytest.mark.skipif(not NB101_VIS.exists(), reason="../shared/data absent")
def test_rank_correlation_runs_on_nb101_by_config_alone(tmp_path):
  from configs import rank_correlation
  c = rank_correlation.get_config("small,nb101")
  c.space.num_archs, c.space.stem_channels, c.space.num_stacks = 4, 8, 2
  c.data.name, c.data.root, c.data.batch_size = "digits16", "", 8
  result = correlation.run_rank_correlation(c, tmp_path)
  archs = (tmp_path / "archs.txt").read_text().split()
  assert len(archs) == 4 and all(len(a) == 32 for a in archs)  # NB101 graph hashes
  metrics_seen = {r["metric"] for r in result if r["subset"] == "all"}
  assert {"lga_eval", "ncn_train", "params", "random"} <= metrics_seen
  assert all(r["n"] == 4 and r["n_degenerate"] == 0 for r in result if r["subset"] == "all")
  summary = (tmp_path / "summary.txt").read_text()
  assert summary.startswith("nb101") and "params over all 1000 archs" in summary


def test_study_configs_refuse_spaces_they_do_not_support():
  from configs import deciles
  with pytest.raises(ValueError, match="runs on nb201, not 'nds_darts'"):
    deciles.get_config("small,nds_darts")
