"""How well scores rank architectures: Kendall τ (with its standard error)
and Spearman ρ of score columns against a ground truth, the chance and
parameter-count baselines.

Degenerate architectures (no input->output path: a zero NTK) get the
metrics' defined values that rank them last; a table reports τ with them
and, where there are any, without them (``subset`` = ``all`` /
``non_degenerate``). Non-finite rows (an overflowed kernel) are left out of
both and counted (``n_nonfinite``).
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from ntkjax import stats
from ntkjax.ground_truth import GroundTruth, NotInGroundTruth
from ntkjax.spaces import nb201

__all__ = ["CorrelationRow", "TABLE_FIELDS", "SUBSETS", "ComparisonRow", "compare_runs", "correlations",
           "random_scores", "params_baseline", "format_table"]

SUBSETS = ("all", "non_degenerate")


class CorrelationRow(NamedTuple):
  metric: str
  subset: str          # 'all' or 'non_degenerate'
  n: int
  n_degenerate: int
  n_nonfinite: int     # rows left out: a kernel or metric was not finite
  tau: float
  tau_se: float        # jackknife standard error of tau
  tau_p: float
  rho: float
  rho_p: float


TABLE_FIELDS = list(CorrelationRow._fields)


def random_scores(key: jax.Array, indices: Sequence[int]) -> np.ndarray:
  """A reproducible uniform score per architecture (the chance baseline),
  drawn with ``fold_in(key, index)`` so it does not depend on order."""
  idx = np.asarray(indices, np.int32)
  draw = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))
  return np.asarray(draw(idx), np.float64)


def correlations(archs: Sequence[str], scores: Mapping[str, np.ndarray], truth: GroundTruth, *,
                 degenerate: np.ndarray, nonfinite: np.ndarray | None = None,
                 random_key: jax.Array | None = None, indices: Sequence[int] | None = None
                 ) -> list[CorrelationRow]:
  """Kendall τ and Spearman ρ of each score (``scores[name]``, aligned with
  ``archs``) with ``truth``; NaN scores rank last.

  ``random_key`` adds the ``random`` baseline, drawn per ``indices`` (the
  space's ``index`` of each arch). Archs missing from ``truth`` are an
  error; ``nonfinite`` rows are left out and counted.
  """
  missing = [a for a in archs if a not in truth]
  if missing:
    raise NotInGroundTruth(f"{len(missing)} scored archs are not in {truth.source}, e.g. {missing[0]}")
  acc = truth.lookup(archs)
  degenerate = np.asarray(degenerate, bool)
  nonfinite = np.zeros_like(degenerate) if nonfinite is None else np.asarray(nonfinite, bool)
  scores = {k: np.asarray(v, np.float64) for k, v in scores.items()}
  if random_key is not None:
    if indices is None:
      raise ValueError("the random baseline needs the archs' indices")
    scores["random"] = random_scores(random_key, indices)
  out = []
  for subset, keep in zip(SUBSETS, (~nonfinite, ~nonfinite & ~degenerate)):
    if keep.sum() < 3 or (subset == "non_degenerate" and not degenerate[~nonfinite].any()):
      continue  # too few archs, or the same archs as 'all
    for name, s in scores.items():
      tau = stats.kendall_tau(s[keep], acc[keep], nan_policy="last")
      rho = stats.spearman_rho(s[keep], acc[keep], nan_policy="last")
      out.append(CorrelationRow(name, subset, int(keep.sum()), int(degenerate[keep].sum()),
                                int(nonfinite.sum()), tau.value, tau.se, tau.pvalue, rho.value, rho.pvalue))
  return out


class ComparisonRow(NamedTuple):
  """One score from two runs over the same archs (``compare_runs``)."""
  metric: str
  n: int
  tau_a: float
  tau_a_se: float
  tau_b: float
  tau_b_se: float
  delta: float       # tau_b - tau_a
  delta_se: float    # paired jackknife over the archs
  delta_p: float     # two-sided, normal
  agreement: float   # Kendall tau between the two runs' scores (NaN pairs left out)


def compare_runs(archs: Sequence[str], scores_a: Mapping[str, np.ndarray], scores_b: Mapping[str, np.ndarray],
                 truth: GroundTruth) -> list[ComparisonRow]:
  """Each score that both runs have (``scores_*[name]``, aligned with
  ``archs``; e.g. one study at 16 and at 64 images): its Kendall τ with
  ``truth`` in each run, their difference with the paired jackknife
  (``stats.kendall_tau_difference``) and how far the runs rank the archs
  alike. NaN scores rank last, as in ``correlations``."""
  missing = [a for a in archs if a not in truth]
  if missing:
    raise NotInGroundTruth(f"{len(missing)} archs are not in {truth.source}, e.g. {missing[0]}")
  acc = truth.lookup(archs)
  out = []
  for name in [k for k in scores_a if k in scores_b]:
    a, b = np.asarray(scores_a[name], np.float64), np.asarray(scores_b[name], np.float64)
    ta, tb = (stats.kendall_tau(s, acc, nan_policy="last") for s in (a, b))
    d = stats.kendall_tau_difference(a, b, acc, nan_policy="last")
    agree = stats.kendall_tau(a, b, nan_policy="omit").value
    out.append(ComparisonRow(name, ta.n, ta.value, ta.se, tb.value, tb.se, d.value, d.se, d.pvalue, agree))
  return out


def params_baseline(truth: GroundTruth, count: Callable[[str], int], *, reachable_only: bool = False
                    ) -> stats.Correlation:
  """Kendall τ of the parameter count ``count(arch)`` with ``truth`` over
  every arch in it; for NB201 optionally only the archs without unreachable
  ops (``nb201.has_unreachable_ops``)."""
  archs = sorted(truth.accuracy)
  if reachable_only:
    if truth.space != "nb201":
      raise ValueError(f"reachable_only is an NB201 subset, not one of {truth.space}")
    archs = [a for a in archs if not nb201.has_unreachable_ops(a)]
  params = np.array([count(a) for a in archs], np.float64)
  return stats.kendall_tau(params, truth.lookup(archs))


def format_table(table: Sequence[CorrelationRow], key: str = "metric") -> str:
  lines = [f"{key:<14}{'subset':<16}{'n':>6}{'degen':>7}{'tau':>9}{'±se':>7}{'rho':>9}"]
  for r in table:
    lines.append(f"{str(getattr(r, key)):<14}{r.subset:<16}{r.n:>6}{r.n_degenerate:>7}"
                 f"{r.tau:>9.3f}{r.tau_se:>7.3f}{r.rho:>9.3f}")
  excluded = max((r.n_nonfinite for r in table), default=0)
  if excluded:
    lines.append(f"({excluded} rows with a non-finite kernel or metric left out)")
  return "\n".join(lines)
