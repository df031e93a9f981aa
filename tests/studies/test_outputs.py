"""What each study's result prints and writes, from synthetic results (no
network runs): summaries, CSV tables and figures with their n."""

import csv

import numpy as np
import pytest

from ntkjax import ground_truth, ranking, scoring, stats, tracking
from ntkjax import search as search_lib
from ntkjax.experiments import launch
from ntkjax.studies import (
  deciles,
  init_schemes,
  kernel_evolution,
  post_training,
  rank_correlation,
  score,
  search,
  trajectories,
)

COLUMNS = scoring.metric_columns(("eval",))


def _row(metric, subset="all", tau=0.5, n_nonfinite=0):
  return ranking.CorrelationRow(metric, subset, 10, 1, n_nonfinite, tau, 0.1, 0.01, 0.6, 0.01)


def _score(arch, lga, nonfinite=False):
  return scoring.ArchScore(arch, 0, 7, 0, 100, False, nonfinite, {c: lga for c in COLUMNS}, 0.1)


def _tracked(arch, ts, names, value):
  return tracking.TrackedArch(arch, 0, None, 0, 100, False, False, {(n, t): value + t for n in names for t in ts},
                              {t: 1.0 for t in ts if t}, {t: 50.0 for t in ts if t}, 1.0)


def _written(result, tmp_path):
  paths = launch.write_outputs(result, tmp_path)
  assert all(p.stat().st_size > 0 for p in paths)
  return {p.name: p for p in paths}


def test_score_summary_leaves_nonfinite_rows_out_and_says_so(tmp_path):
  truth = ground_truth.GroundTruth({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, {}, "cifar10", "test", 200, "t")
  rows = [_score("a", 0.1), _score("b", 0.2), _score("c", 0.3), _score("d", float("nan"), nonfinite=True)]
  kernels = {"eval": np.eye(8), "train": np.ones((8, 8))}
  network = "NB201 benchmark network, C=8, N=1 (reduced: the benchmark's is C=16, N=5)"
  result = score.ScoreResult("nb201", "digits16", 8, rows, COLUMNS, truth, network, "a", kernels, np.arange(8) % 3,
                             "ntkjax-score --config cifar10 --workdir W")
  text = result.summary()
  lga = next(line for line in text.splitlines() if line.startswith("lga_eval")).split()
  assert lga[1:3] == ["3", "0.2"] and float(lga[3]) == pytest.approx(1.0)
  assert "1 of 4 archs left out" in text
  assert network in text.splitlines()[0] and text.splitlines()[-1] == "Next: ntkjax-score --config cifar10 --workdir W"
  assert set(_written(result, tmp_path)) == {"summary.txt", "metrics.png", "kernel.png"}


def test_score_next_command_resolves_and_depends_on_the_ground_truth():
  from ntkjax.configs import score as score_config
  from tests.test_docs import check
  truth = ground_truth.GroundTruth({"a": 1.0}, {}, "cifar10", "test", 200, "t")
  for variant in ("", "nb101", "nds_enas", "nds_darts"):
    c = score_config.get_config(variant or None)
    for t in (None, truth):
      command = score.next_command(c, t)
      check(command[command.index("ntkjax-"):].split(" (")[0])
  assert "--config.ground_truth.table=nds_enas" in score.next_command(score_config.get_config("nds_enas"), None)
  assert "rank-correlation --config full" in score.next_command(score_config.get_config(), truth)


def test_rank_correlation_outputs(tmp_path):
  table = [_row(m, s) for s in ranking.SUBSETS for m in COLUMNS + ["params"]]
  result = rank_correlation.RankCorrelationResult("nb201", "cifar10", 16, "t.csv", "cifar10-valid",
                                                  [_score("a", 0.1)] * 3, table, stats.Correlation(0.54, 0.0, 15625),
                                                  stats.Correlation(0.57, 0.0, 9445))
  files = _written(result, tmp_path)
  assert set(files) == {"summary.txt", "correlations.csv", "rank_correlation.png"}
  assert "over the 9445 without unreachable ops: tau 0.570" in result.summary()
  rows = list(csv.DictReader(open(files["correlations.csv"])))
  assert len(rows) == len(table) and rows[0]["tau_se"] == "0.1"


def test_deciles_and_init_schemes_outputs(tmp_path):
  d_rows = [deciles.DecileCorrelation(s, label, _row("lga_eval", tau=0.1 * s)) for s in (0, 1)
            for label in deciles.LABELS]
  d = deciles.DecilesResult("nb201", "cifar10-valid", 2, 4, ["lga_eval"], d_rows)
  assert "0.050" in d.summary().splitlines()[-1]  # the median of 0.0 and 0.1
  assert {"deciles.csv", "deciles.png"} <= set(_written(d, tmp_path))
  i_rows = [init_schemes.SchemeCorrelation(s, _row(m, sub)) for s in ("xavier", "kaiming") for m in COLUMNS
            for sub in ranking.SUBSETS]
  i = init_schemes.InitSchemesResult("nb201", "cifar10-valid", 20, ("xavier", "kaiming"), COLUMNS, i_rows)
  assert "Kendall tau by init scheme, 20 archs" in i.summary()
  assert {"init_schemes.csv", "init_schemes.png"} <= set(_written(i, tmp_path))


def test_training_study_outputs(tmp_path):
  ts, names = [0, 1, 3], COLUMNS
  archs = [_tracked(f"a{k}", ts, names, k) for k in range(4)]
  rows = [post_training.EpochCorrelation(t, _row(m)) for t in ts for m in names] + [
      post_training.EpochCorrelation(0, _row("params"))]
  pt = post_training.PostTrainingResult("nb201", "cifar10-valid", 256, ts, names, rows, archs)
  files = _written(pt, tmp_path)
  assert {"post_training.png", "at_init_and_lga_t.png", "post_training.csv"} <= set(files)
  assert "t=3" in pt.summary()
  ke_archs = [_tracked(f"a{k}", ts, kernel_evolution.NAMES, k) for k in range(2)]
  ke = kernel_evolution.KernelEvolutionResult("nb201", ts, ke_archs)
  assert ke.series()["correlation"].shape == (2, 3)
  assert {"kernel_evolution.png", "kernel_evolution.csv"} <= set(_written(ke, tmp_path))
  tr = trajectories.TrajectoriesResult("nb201", "cifar10-valid", 2, ts, names,
                                       {g: archs[:2] for g in ("high", "mid", "low")})
  assert tr.series()["mid"]["lga_eval"].shape == (2, 3) and "trajectories.png" in _written(tr, tmp_path)


def test_search_outputs(tmp_path):
  truth = ground_truth.GroundTruth({"a": 94.0}, {}, "cifar10", "test", 200, "t")
  table = [search_lib.RunSummary("rs", "lga_eval@1", 2, 91.0, 1.0, 50.0, 12, 10, 42.0, 3.0)]
  costs = search_lib.UnitCosts(2.0, {"train": 1.0, "eval": 0.5}, [], 256, 128)
  result = search.SearchStudyResult("nb201", truth, [], table, costs, 200)
  assert "42×" in result.summary() and "e = 2.00 s/epoch" in result.summary()
  assert "search_table.csv" in _written(result, tmp_path)


def test_figures_carry_error_bars_and_integer_epoch_ticks(tmp_path):
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  from ntkjax import figures
  captured = {}
  real = plt.Figure.savefig

  def keep(fig, *a, **k):
    captured["fig"] = fig
    return real(fig, *a, **k)
  plt.Figure.savefig = keep
  try:
    figures.tau_over_epochs([(t, _row("lga_eval", tau=0.1 * t)) for t in (0, 1, 3)], tmp_path / "t.png",
                            ["lga_eval"], title="n=4")
    ax = captured["fig"].axes[0]
    assert list(ax.get_xticks()) == [0, 1, 3] and ax.get_legend() is not None
    assert ax.containers and ax.containers[0].has_yerr  # ±se
    series = {"correlation": np.ones((2, 3)), "relative_difference": np.zeros((2, 3))}
    figures.kernel_evolution(series, [0, 1, 2], tmp_path / "k.png", labels=["x", "y"], title="n=2")
    ax = captured["fig"].axes[0]
    assert list(ax.get_xticks()) == [0, 1, 2] and [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]
  finally:
    plt.Figure.savefig = real


def test_the_score_table_gives_tau_against_the_truth_or_else_the_parameter_count():
  archs = [f"a{i}" for i in range(4)]
  rows = [scoring.ArchScore(a, i, None, 0, 100 * (i + 1), False, False, {"lga_eval": float(i), "fnorm_eval": -i}, 1.0)
          for i, a in enumerate(archs)]
  by_params = score.summarize(rows, ["lga_eval", "fnorm_eval"]).splitlines()
  assert by_params[0] == "tau and rho against parameter count (no ground truth), over 4 archs:"
  assert by_params[2].split()[:4] == ["lga_eval", "4", "1.5", "1.000"]  # ranks the params exactly
  assert by_params[3].split()[:4] == ["fnorm_eval", "4", "-1.5", "-1.000"]
  truth = ground_truth.GroundTruth(dict(zip(archs, [50.0, 40.0, 60.0, 70.0])), {}, "digits16", "top1", 0,
                                   "my.csv (column 'top1')")
  by_truth = score.summarize(rows, ["lga_eval"], truth).splitlines()
  assert by_truth[0] == "tau and rho against accuracy (digits16 top1, my.csv (column 'top1')), over 4 archs:"
  want = stats.kendall_tau([0, 1, 2, 3], [50, 40, 60, 70]).value
  assert float(by_truth[2].split()[3]) == pytest.approx(want, abs=5e-4)
