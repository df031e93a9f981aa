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
variance) holds whatever τ is. ``kendall_tau_difference`` compares two
scores of the same items (e.g. one metric at 16 and at 64 images): the
paired jackknife leaves the same item out of both, so the shared sampling
of items cancels and its SE is far below either τ's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

__all__ = ["NAN_POLICIES", "Correlation", "kendall_tau", "kendall_tau_difference", "spearman_rho"]

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
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size),
                     _jackknife_se(_tau_leave_one_out(s, t)))


def kendall_tau_difference(scores_a, scores_b, targets, *, nan_policy: str = "raise") -> Correlation:
  """τ(scores_b) − τ(scores_a) against the same ``targets`` (Kendall τ-b),
  with the paired jackknife standard error and a two-sided normal p-value.
  With ``'omit'`` an item NaN in either score is dropped from both."""
  a = np.asarray(scores_a, np.float64).ravel()
  b = np.asarray(scores_b, np.float64).ravel()
  t = np.asarray(targets, np.float64).ravel()
  if a.shape != b.shape:
    raise ValueError(f"scores_a ({a.size}) and scores_b ({b.size}) differ in length")
  if nan_policy == "omit":
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b, t = a[keep], b[keep], t[keep]
  ra, rt = _prepare(a, t, nan_policy)
  rb, _ = _prepare(b, t, nan_policy)
  value = float(sps.kendalltau(rb, rt).statistic - sps.kendalltau(ra, rt).statistic)
  se = _jackknife_se(_tau_leave_one_out(rb, rt) - _tau_leave_one_out(ra, rt))
  p = float(2 * sps.norm.sf(abs(value) / se)) if se > 0 else float("nan")
  return Correlation(value, p, int(ra.size), se)


def _jackknife_se(loo: np.ndarray) -> float:
  """The jackknife standard error from leave-one-out values; NaN for fewer
  than 3 or where one is NaN."""
  n = loo.size
  if n < 3 or np.isnan(loo).any():
    return float("nan")
  return float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def _tau_leave_one_out(s: np.ndarray, t: np.ndarray, block: int = 1024) -> np.ndarray:
  """Every leave-one-out τ-b, from the full sample's pair counts minus each
  point's own pairs (O(n²) in blocks); NaN where a τ is undefined, and for
  fewer than 3 points."""
  n = s.size
  if n < 3:
    return np.full(n, np.nan)
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
    return np.where(den > 0, c / den, np.nan)


def spearman_rho(scores, targets, *, nan_policy: str = "raise") -> Correlation:
  """Spearman ρ (scipy) with the module's NaN policy."""
  s, t = _prepare(scores, targets, nan_policy)
  res = sps.spearmanr(s, t)
  return Correlation(float(res.statistic), float(res.pvalue), int(s.size))
