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


def test_nonfinite_rows_are_left_out_and_counted():
  archs = [a for a in ARCHS[:60] if not nb201.is_degenerate(a)][:20]
  acc = np.arange(20.0)
  gt = ground_truth.GroundTruth(dict(zip(archs, acc)), {}, "cifar10-valid", "test", 200, "synthetic")
  scores = acc.copy()
  scores[[3, 7]] = [-1e9, 1e9]  # what an overflowed kernel's metric could be
  nonfinite = np.zeros(20, bool)
  nonfinite[[3, 7]] = True
  (row, _) = ranking.correlations(archs, {"s": scores}, gt, degenerate=np.zeros(20, bool), nonfinite=nonfinite)
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
