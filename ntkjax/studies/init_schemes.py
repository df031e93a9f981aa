"""Section 3.4 / Figure 4: the same architectures and minibatch under each
initialisation scheme in ``config.schemes``; Kendall τ of every metric per
scheme. NB201 only (the scheme is a field of its network)."""

from __future__ import annotations

from typing import NamedTuple

import ml_collections
import numpy as np

from ntkjax import figures, ranking, scoring
from ntkjax.spaces import api
from ntkjax.studies import setup

__all__ = ["SchemeCorrelation", "InitSchemesResult", "run"]


class SchemeCorrelation(NamedTuple):
  init: str
  correlation: ranking.CorrelationRow


class InitSchemesResult(NamedTuple):
  space: str
  truth_dataset: str
  num_archs: int
  schemes: tuple[str, ...]
  columns: list[str]
  rows: list[SchemeCorrelation]

  def summary(self) -> str:
    lines = [f"Kendall tau by init scheme, {self.num_archs} archs",
             f"{'metric':<12}{'subset':<16}" + "".join(f"{s:>15}" for s in self.schemes)]
    for subset in dict.fromkeys(r.correlation.subset for r in self.rows):
      for m in self.columns:
        taus = {r.init: r.correlation.tau for r in self.rows
                if r.correlation.metric == m and r.correlation.subset == subset}
        lines.append(f"{m:<12}{subset:<16}" + "".join(f"{taus.get(s, np.nan):>15.3f}" for s in self.schemes))
    return "\n".join(lines)

  def tables(self):
    return {"init_schemes.csv": ([{"init": r.init, **r.correlation._asdict()} for r in self.rows],
                                 ["init"] + ranking.TABLE_FIELDS)}

  def figures(self):
    title = f"{self.space} {self.truth_dataset}: τ by initialisation (n={self.num_archs})"
    return {"init_schemes.png": lambda p: figures.init_scheme_bars(
        [(r.init, r.correlation) for r in self.rows], p, self.schemes, self.columns, title=title)}


def run(config: ml_collections.ConfigDict, workdir) -> InitSchemesResult:
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    archs = setup.sample_archs(config, job)
    columns = scoring.metric_columns(config.bn_modes)
    rows = []
    for scheme in config.schemes:
      space = api.NB201Space.from_network(job.space.net.clone(init_scheme=scheme), job.space.official_index)
      options = {**setup.score_options(config, job), "space": space}
      scores = scoring.score_architectures(job.workdir / f"results_{scheme}.csv", archs, **options)
      rows += [SchemeCorrelation(scheme, r) for r in setup.correlate(scores, columns, truth)]
    return InitSchemesResult(job.space.name, truth.dataset, len(archs), tuple(config.schemes), columns, rows)
