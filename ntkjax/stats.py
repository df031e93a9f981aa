"""Rank correlations between proxy scores and benchmark accuracies.

NaN policy (``nan_policy=``), applied to pairs where either value is NaN:

* ``'raise'`` (default): ValueError naming how many NaNs and where.
* ``'omit'``: drop those pairs; ``n`` in the result says how many remain.
* ``'last'``: a NaN *score* ranks below every other score (NaN targets still
  raise). This is how degenerate architectures are ranked last.

±inf are valid scores: correlations are computed on ranks, so −inf simply
ranks last (ntkjax's NCN for singular kernels).

``kendall_tau`` also gives τ's jackknife standard error (``se``): the
spread of τ over leave-one-out samples, which (unlike the p-value's null
variance) holds whatever τ is.
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
  se: float = float("nan")  # standard error (Kendall: jackknife); NaN where not computed


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
  """Kendall τ-b (scipy) with the module's NaN policy and its jackknife
  standard error."""
  s, t = _prepare(scores, targets, nan_policy)
  res = sps.kendalltau(s, t)
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size), _tau_jackknife_se(s, t))


def _tau_jackknife_se(s: np.ndarray, t: np.ndarray, block: int = 1024) -> float:
  """Jackknife standard error of τ-b: every leave-one-out τ-b from the
  full sample's pair counts minus each point's own pairs (O(n²) in blocks)."""
  n = s.size
  if n < 3:
    return float("nan")
  concordance = np.empty(n)  # Σ_j sign(s_k - s_j) sign(t_k - t_j), per k
  ties_s = np.empty(n)       # #{j != k: s_j = s_k}
  ties_t = np.empty(n)
  for lo in range(0, n, block):
    ds = np.sign(s[lo:lo + block, None] - s[None])
    dt = np.sign(t[lo:lo + block, None] - t[None])
    concordance[lo:lo + block] = (ds * dt).sum(1)
    ties_s[lo:lo + block] = (ds == 0).sum(1) - 1
    ties_t[lo:lo + block] = (dt == 0).sum(1) - 1
  pairs = (n - 1) * (n - 2) / 2
  c = concordance.sum() / 2 - concordance
  ns = ties_s.sum() / 2 - ties_s
  nt = ties_t.sum() / 2 - ties_t
  den = np.sqrt((pairs - ns) * (pairs - nt))
  with np.errstate(invalid="ignore", divide="ignore"):
    loo = np.where(den > 0, c / den, np.nan)
  if np.isnan(loo).any():
    return float("nan")
  return float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def spearman_rho(scores, targets, *, nan_policy: str = "raise") -> Correlation:
  """Spearman ρ (scipy) with the module's NaN policy."""
  s, t = _prepare(scores, targets, nan_policy)
  res = sps.spearmanr(s, t)
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size))
