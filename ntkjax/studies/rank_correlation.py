"""Section 3.2 / Table 1 / Figure 3: Kendall τ and Spearman ρ of every
metric in each BN mode at initialisation, with the parameter count and a
random score as baselines, in any space (``config.space.name``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import ml_collections

from ntkjax import figures, ranking, scoring, stats
from ntkjax.studies import setup

__all__ = ["RankCorrelationResult", "run"]


class RankCorrelationResult(NamedTuple):
  space: str
  dataset: str
  num_images: int
  truth: str                       # source and column of the ground truth
  truth_dataset: str
  scores: list[scoring.ArchScore]
  table: list[ranking.CorrelationRow]
  params_all: stats.Correlation    # parameter count over every arch of the ground truth
  params_reachable: stats.Correlation | None  # NB201: over the archs without unreachable ops

  def summary(self) -> str:
    text = (f"{self.space} {self.dataset}: {len(self.scores)} archs, {self.num_images} images, truth "
            f"{self.truth}\n" + ranking.format_table(self.table) +
            f"\nparams over all {self.params_all.n} archs of the ground truth: tau {self.params_all.value:.3f}")
    if self.params_reachable is not None:
      text += (f"; over the {self.params_reachable.n} without unreachable ops: "
               f"tau {self.params_reachable.value:.3f}")
    return text

  def tables(self):
    return {"correlations.csv": ([r._asdict() for r in self.table], ranking.TABLE_FIELDS)}

  def figures(self):
    title = f"{self.space} {self.truth_dataset}: Kendall τ at init (n={len(self.scores)})"
    return {"rank_correlation.png": lambda p: figures.correlation_bars(self.table, p, title=title)}


def run(config: ml_collections.ConfigDict, workdir) -> RankCorrelationResult:
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    archs = setup.sample_archs(config, job)
    rows = scoring.score_architectures(job.workdir / "results.csv", archs, **setup.score_options(config, job))
    columns = setup.score_columns(config)
    table = setup.correlate(rows, columns, truth, random_key=jax.random.fold_in(job.k_arch, 1),
                            indices=[job.space.index(a) for a in archs])
    count = setup.official_params(job)
    reachable = (ranking.params_baseline(truth, count, reachable_only=True)
                 if job.space.name == "nb201" else None)
    return RankCorrelationResult(job.space.name, job.dataset, len(job.labels),
                                 f"{truth.source} {truth.dataset}/{truth.split}", truth.dataset, rows, table,
                                 ranking.params_baseline(truth, count), reachable)
