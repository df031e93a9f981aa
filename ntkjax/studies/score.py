"""The ``score`` job: the four NTK metrics in each BN mode for sampled
architectures of any space, with Kendall τ when a ground truth is given."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import ml_collections
import numpy as np

from ntkjax import scoring, stats
from ntkjax.ground_truth import GroundTruth
from ntkjax.studies import setup

__all__ = ["ScoreResult", "run", "summarize"]


def summarize(rows: Sequence[scoring.ArchScore], columns: Sequence[str], truth: GroundTruth | None = None) -> str:
  """A text table: per metric column the median over the finite rows and,
  with ground truth, Kendall τ (± jackknife s.e.) and Spearman ρ (NaN scores
  ranked last)."""
  finite = [r for r in rows if not r.nonfinite]
  lines = [f"{'metric':<12}{'n':>6}{'median':>14}" + (f"{'tau':>9}{'±se':>7}{'rho':>9}" if truth else "")]
  for col in columns:
    vals = np.array([r.values[col] for r in finite])
    line = f"{col:<12}{len(vals):>6}{np.median(vals) if len(vals) else np.nan:>14.5g}"
    if truth:
      pairs = [(r.values[col], truth[r.arch]) for r in finite if r.arch in truth]
      if len(pairs) >= 2:
        s, t = np.array(pairs).T
        tau = stats.kendall_tau(s, t, nan_policy="last")
        line += f"{tau.value:>9.3f}{tau.se:>7.3f}{stats.spearman_rho(s, t, nan_policy='last').value:>9.3f}"
    lines.append(line)
  if len(finite) < len(rows):
    lines.append(f"{len(rows) - len(finite)} of {len(rows)} archs left out: a kernel or metric was not finite "
                 "(column 'nonfinite' in results.csv)")
  return "\n".join(lines)


class ScoreResult(NamedTuple):
  space: str
  dataset: str
  num_images: int
  scores: list[scoring.ArchScore]
  columns: list[str]
  truth: GroundTruth | None

  def summary(self) -> str:
    return (f"{self.space} NTK metrics of {len(self.scores)} archs on {self.num_images} {self.dataset} images:\n"
            + summarize(self.scores, self.columns, self.truth))

  def tables(self):
    return {}

  def figures(self):
    return {}


def run(config: ml_collections.ConfigDict, workdir) -> ScoreResult:
  """Runs the score job described by ``configs/score.py`` in ``workdir``."""
  with setup.prepare(config, workdir) as job:
    archs = job.space.sample(job.k_arch, config.space.num_archs)
    rows = scoring.score_architectures(job.workdir / "results.csv", archs, **setup.score_options(config, job))
    return ScoreResult(job.space.name, job.dataset, len(job.labels), rows,
                       scoring.metric_columns(config.bn_modes), job.truth)
