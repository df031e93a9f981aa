import numpy as np
import pytest
from scipy import stats as sps

from ntkjax import stats


def test_matches_scipy_on_clean_data():
  rng = np.random.default_rng(0)
  s, t = rng.normal(size=50), rng.normal(size=50)
  assert stats.kendall_tau(s, t).value == pytest.approx(sps.kendalltau(s, t).statistic)
  assert stats.spearman_rho(s, t).value == pytest.approx(sps.spearmanr(s, t).statistic)


def test_nan_policies():
  s = np.array([1.0, np.nan, 3.0, 4.0, 2.0])
  t = np.array([1.0, 0.0, 3.0, 4.0, 2.0])
  with pytest.raises(ValueError, match="1 NaN scores.*index 1"):
    stats.kendall_tau(s, t)
  omit = stats.kendall_tau(s, t, nan_policy="omit")
  assert omit.n == 4 and omit.value == pytest.approx(1.0)
  last = stats.kendall_tau(s, t, nan_policy="last")
  assert last.n == 5 and last.value == pytest.approx(1.0)  # NaN ranked last, as its target
  with pytest.raises(ValueError, match="'drop'"):
    stats.kendall_tau(s, t, nan_policy="drop")


def test_minus_inf_ranks_last():
  s = np.array([-np.inf, 2.0, 3.0, 1.0])
  t = np.array([0.0, 2.0, 3.0, 1.0])
  assert stats.kendall_tau(s, t).value == pytest.approx(1.0)
  assert stats.spearman_rho(s, t).value == pytest.approx(1.0)


def test_length_mismatch_is_named():
  with pytest.raises(ValueError, match=r"scores \(3\) and targets \(2\)"):
    stats.kendall_tau([1, 2, 3], [1, 2])


def _brute_loo(fn, n):
  return np.array([fn(np.delete(np.arange(n), i)) for i in range(n)])


def _jackknife(loo):
  n = loo.size
  return np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))


def test_jackknife_se_and_paired_difference_match_brute_force_leave_one_out():
  rng = np.random.default_rng(1)
  n = 40
  t = rng.normal(size=n)
  a = np.round(t + rng.normal(size=n), 1)        # ties in the scores
  b = np.round(a + 0.3 * rng.normal(size=n), 1)  # a second, correlated score of the same items
  tau = lambda s, i: sps.kendalltau(s[i], t[i]).statistic
  assert stats.kendall_tau(a, t).se == pytest.approx(_jackknife(_brute_loo(lambda i: tau(a, i), n)), rel=1e-9)
  d = stats.kendall_tau_difference(a, b, t)
  assert d.value == pytest.approx(tau(b, np.arange(n)) - tau(a, np.arange(n)), rel=1e-12)
  want = _jackknife(_brute_loo(lambda i: tau(b, i) - tau(a, i), n))
  assert d.se == pytest.approx(want, rel=1e-9) and d.n == n
  # pairing: for correlated scores far tighter than either tau's own SE; zero for identical ones
  assert d.se < 0.5 * min(stats.kendall_tau(a, t).se, stats.kendall_tau(b, t).se) and 0 < d.pvalue < 1
  same = stats.kendall_tau_difference(a, a, t)
  assert same.value == 0 and same.se == 0 and np.isnan(same.pvalue)


def test_paired_difference_nan_policies_and_lengths():
  t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
  a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
  b = np.array([6.0, 5.0, 4.0, 3.0, np.nan, 1.0])
  omit = stats.kendall_tau_difference(a, b, t, nan_policy="omit")  # rows 2 and 4 leave both
  assert omit.n == 4 and omit.value == pytest.approx(-2.0)
  with pytest.raises(ValueError, match="1 NaN scores"):
    stats.kendall_tau_difference(a, b, t)
  with pytest.raises(ValueError, match=r"scores_a \(6\) and scores_b \(5\)"):
    stats.kendall_tau_difference(a, b[:5], t)
