"""Correlation tables: against scipy, subsets, exclusions, baselines."""

import jax
import numpy as np
import pytest
import scipy.stats

from ntkjax import ground_truth, ranking
from ntkjax.spaces import nb201

ARCHS = nb201.all_archs()


def test_correlations_against_scipy_and_subsets():
  archs = ARCHS[:400][::4]
  acc = np.linspace(50, 90, len(archs))
  gt = ground_truth.GroundTruth(dict(zip(archs, acc)), {}, "cifar10-valid", "test", 200, "synthetic")
  noisy = acc + np.random.default_rng(1).normal(0, 10, len(archs))
  degen = np.array([nb201.is_degenerate(a) for a in archs])
  table = ranking.correlations(archs, {"perfect": acc, "reversed": -acc, "noisy": noisy}, gt, degenerate=degen,
                               random_key=jax.random.key(0), indices=[nb201.ops_to_index(a) for a in archs])
  get = {(r.metric, r.subset): r for r in table}
  assert get[("perfect", "all")].tau == pytest.approx(1.0) and get[("reversed", "all")].tau == pytest.approx(-1.0)
  assert get[("noisy", "all")].tau == pytest.approx(scipy.stats.kendalltau(noisy, acc)[0])
  assert get[("noisy", "all")].rho == pytest.approx(scipy.stats.spearmanr(noisy, acc)[0])
  assert 0 < get[("noisy", "all")].tau_se < 0.2
  assert 0 < degen.sum() and get[("noisy", "all")].n_degenerate == degen.sum()
  keep = ~degen
  assert get[("noisy", "non_degenerate")].n == keep.sum()
  assert get[("noisy", "non_degenerate")].tau == pytest.approx(scipy.stats.kendalltau(noisy[keep], acc[keep])[0])
  assert abs(get[("random", "all")].tau) < 0.3
  with pytest.raises(KeyError, match="not in synthetic"):
    ranking.correlations(ARCHS[1:2] + archs, {"x": np.r_[0, acc]}, gt, degenerate=np.r_[False, degen])


def test_without_degenerate_archs_there_is_no_duplicate_subset(truth_csv):
  truth = ground_truth.read_csv(truth_csv, arch_column="arch", accuracy_column="acc", index_column="idx")
  archs = [a for a in nb201.all_archs()[1000:1040] if not nb201.is_degenerate(a)][:20]
  rows = ranking.correlations(archs, {"s": np.arange(20.0)}, truth, degenerate=np.zeros(20, bool))
  assert [r.subset for r in rows] == ["all"]
  rows = ranking.correlations(archs, {"s": np.arange(20.0)}, truth, degenerate=np.arange(20) == 3)
  assert [r.subset for r in rows] == ["all", "non_degenerate"]


def test_nonfinite_rows_are_left_out_and_counted():
  archs = [a for a in ARCHS[:60] if not nb201.is_degenerate(a)][:20]
  acc = np.arange(20.0)
  gt = ground_truth.GroundTruth(dict(zip(archs, acc)), {}, "cifar10-valid", "test", 200, "synthetic")
  scores = acc.copy()
  scores[[3, 7]] = [-1e9, 1e9]  # what an overflowed kernel's metric could be
  nonfinite = np.zeros(20, bool)
  nonfinite[[3, 7]] = True
  (row,) = ranking.correlations(archs, {"s": scores}, gt, degenerate=np.zeros(20, bool), nonfinite=nonfinite)
  assert (row.n, row.n_nonfinite, row.tau) == (18, 2, pytest.approx(1.0))
  assert "2 rows with a non-finite kernel or metric left out" in ranking.format_table([row])


def test_random_baseline_is_reproducible_and_order_free():
  idx = [nb201.ops_to_index(a) for a in ARCHS[:50]]
  a = ranking.random_scores(jax.random.key(0), idx)
  b = ranking.random_scores(jax.random.key(0), idx[::-1])
  np.testing.assert_array_equal(a, b[::-1])
  assert not np.array_equal(a, ranking.random_scores(jax.random.key(1), idx))


def test_params_baseline_over_the_whole_truth_and_the_reachable_subset(truth_csv):
  gt = ground_truth.read_csv(truth_csv, arch_column="arch", accuracy_column="acc")
  count = lambda a: nb201.num_params(a)  # noqa: E731
  full = ranking.params_baseline(gt, count)
  assert full.n == 15625 and abs(full.value) < 0.05  # synthetic accuracies are random
  reachable = ranking.params_baseline(gt, count, reachable_only=True)
  assert reachable.n == 9445


def test_compare_runs_pairs_the_same_archs():
  archs = ARCHS[:300][::3]
  acc = np.linspace(50, 90, len(archs))
  gt = ground_truth.GroundTruth(dict(zip(archs, acc)), {}, "cifar10-valid", "test", 200, "synthetic")
  rng = np.random.default_rng(2)
  small = acc + rng.normal(0, 10, len(archs))         # a noisy score, and the same score measured better
  large = acc + 0.5 * (small - acc) + rng.normal(0, 1, len(archs))
  large[3] = np.nan                                    # a degenerate value ranks last
  rows = {r.metric: r for r in ranking.compare_runs(archs, {"m": small, "only_a": acc}, {"m": large}, gt)}
  assert set(rows) == {"m"}
  r = rows["m"]
  ranked_last = np.where(np.isnan(large), -np.inf, large)
  want_a, want_b = (scipy.stats.kendalltau(s, acc)[0] for s in (small, ranked_last))
  assert r.n == len(archs) and (r.tau_a, r.tau_b) == (pytest.approx(want_a), pytest.approx(want_b))
  assert r.delta == pytest.approx(want_b - want_a) and 0 < r.delta_se < min(r.tau_a_se, r.tau_b_se)
  assert r.delta > 0 and r.delta_p < 0.05  # the less noisy run ranks better, detectably
  keep = ~np.isnan(large)
  assert r.agreement == pytest.approx(scipy.stats.kendalltau(small[keep], large[keep])[0])
  with pytest.raises(KeyError, match="not in synthetic"):
    ranking.compare_runs(ARCHS[1:2], {"m": [0.0]}, {"m": [0.0]}, gt)
