"""Rank correlations between proxy scores and benchmark accuracies.

NaN policy (``nan_policy=``), applied to pairs where either value is NaN:

* ``'raise'`` (default): ValueError naming how many NaNs and where.
* ``'omit'``: drop those pairs; ``n`` in the result says how many remain.
* ``'last'``: a NaN *score* ranks below every other score (NaN targets still
  raise). This is how degenerate architectures are ranked last.

±inf are valid scores: correlations are computed on ranks, so −inf simply
ranks last (ntkjax's NCN for singular kernels).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

__all__ = ["NAN_POLICIES", "Correlation", "kendall_tau", "spearman_rho"]

NAN_POLICIES = ("raise", "omit", "last")


class Correlation(NamedTuple):
  value: float
  pvalue: float
  n: int


def _prepare(scores, targets, nan_policy):
  if nan_policy not in NAN_POLICIES:
    raise ValueError(f"unknown nan_policy {nan_policy!r}; known: {', '.join(NAN_POLICIES)}")
  s = np.asarray(scores, np.float64).ravel()
  t = np.asarray(targets, np.float64).ravel()
  if s.shape != t.shape:
    raise ValueError(f"scores ({s.size}) and targets ({t.size}) differ in length")
  bad_t = np.isnan(t)
  if bad_t.any() and nan_policy != "omit":
    raise ValueError(f"{bad_t.sum()} NaN targets (first at index {np.flatnonzero(bad_t)[0]})")
  bad_s = np.isnan(s)
  if nan_policy == "raise" and bad_s.any():
    raise ValueError(f"{bad_s.sum()} NaN scores (first at index {np.flatnonzero(bad_s)[0]}); "
                     "pass nan_policy='omit' or 'last'")
  if nan_policy == "omit":
    keep = ~(bad_s | bad_t)
    s, t = s[keep], t[keep]
  elif nan_policy == "last":
    s = np.where(bad_s, -np.inf, s)
  if s.size < 2:
    raise ValueError(f"need at least 2 valid pairs, got {s.size}")
  return sps.rankdata(s), sps.rankdata(t)


def kendall_tau(scores, targets, *, nan_policy: str = "raise") -> Correlation:
  """Kendall τ-b (scipy) with the module's NaN policy."""
  s, t = _prepare(scores, targets, nan_policy)
  res = sps.kendalltau(s, t)
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size))


def spearman_rho(scores, targets, *, nan_policy: str = "raise") -> Correlation:
  """Spearman ρ (scipy) with the module's NaN policy."""
  s, t = _prepare(scores, targets, nan_policy)
  res = sps.spearmanr(s, t)
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size))
