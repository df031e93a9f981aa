"""Section 3.3 / Figures A2-A4: Kendall τ within each accuracy decile, over
``num_seeds`` draws of ``per_decile`` archs per decile, and over each draw's
whole sample ("Total"). The draws differ in architectures; the
initialisation and the minibatch are those of ``config.seed``. Each distinct
arch is scored once."""

from __future__ import annotations

from typing import NamedTuple

import jax
import ml_collections
import numpy as np
from absl import logging

from ntkjax import figures, ground_truth, ranking, scoring
from ntkjax.studies import setup

__all__ = ["DecileCorrelation", "DecilesResult", "run"]

LABELS = tuple(str(k) for k in range(1, 11)) + ("Total",)


class DecileCorrelation(NamedTuple):
  seed: int
  decile: str                  # '1' (worst) .. '10', or 'Total'
  correlation: ranking.CorrelationRow


class DecilesResult(NamedTuple):
  space: str
  truth_dataset: str
  num_seeds: int
  per_decile: int
  columns: list[str]
  rows: list[DecileCorrelation]

  def summary(self) -> str:
    lines = ["median tau over draws (all archs)", f"{'metric':<12}" + "".join(f"{label:>7}" for label in LABELS)]
    for m in self.columns:
      med = [np.median([r.correlation.tau for r in self.rows if r.correlation.metric == m and r.decile == label
                        and r.correlation.subset == "all"] or [np.nan]) for label in LABELS]
      lines.append(f"{m:<12}" + "".join(f"{v:>7.3f}" for v in med))
    return "\n".join(lines)

  def tables(self):
    return {"deciles.csv": ([{"seed": r.seed, "decile": r.decile, **r.correlation._asdict()} for r in self.rows],
                            ["seed", "decile"] + ranking.TABLE_FIELDS)}

  def figures(self):
    title = (f"{self.space} {self.truth_dataset}: τ per accuracy decile "
             f"({self.num_seeds} draws x {self.per_decile} archs)")
    return {"deciles.png": lambda p: figures.decile_boxes([(r.decile, r.correlation) for r in self.rows], p,
                                                          self.columns, title=title)}


def run(config: ml_collections.ConfigDict, workdir) -> DecilesResult:
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    draws = [ground_truth.sample_per_decile(jax.random.fold_in(job.k_arch, s), truth, config.per_decile)
             for s in range(config.num_seeds)]
    union = sorted({a for d in draws for group in d for a in group})
    logging.info("%d draws x 10 deciles x %d archs: %d distinct archs", len(draws), config.per_decile, len(union))
    scored = {r.arch: r for r in scoring.score_architectures(job.workdir / "results.csv", union,
                                                             **setup.score_options(config, job))}
    columns = setup.score_columns(config)
    rows = []
    for s, draw in enumerate(draws):
      for label, group in zip(LABELS, draw + [[a for g in draw for a in g]]):
        rows += [DecileCorrelation(s, label, r) for r in setup.correlate([scored[a] for a in group], columns, truth)]
    return DecilesResult(job.space.name, truth.dataset, config.num_seeds, config.per_decile, columns, rows)
