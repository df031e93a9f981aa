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
