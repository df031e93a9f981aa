"""Section 4.3 / Figure 6 / Table 1: Kendall τ of every metric after t
epochs of the paper's SGD (LGA_t is ``lga_eval@t``), t in ``config.epochs``,
in any space; t = 0 is at initialisation."""

from __future__ import annotations

from typing import NamedTuple

import ml_collections
import numpy as np

from ntkjax import figures, ranking, tracking
from ntkjax.studies import setup

__all__ = ["EpochCorrelation", "PostTrainingResult", "run"]


class EpochCorrelation(NamedTuple):
  t: int
  correlation: ranking.CorrelationRow


class PostTrainingResult(NamedTuple):
  space: str
  truth_dataset: str
  num_train_images: int
  epochs: list[int]                 # 0 and the config's epochs
  names: list[str]
  rows: list[EpochCorrelation]      # per t and metric; 'params' at t = 0 (the trained network's count)
  archs: list[tracking.TrackedArch]

  def _tau(self, metric, t):
    return next((r.correlation.tau for r in self.rows if r.t == t and r.correlation.metric == metric
                 and r.correlation.subset == "all"), np.nan)

  def summary(self) -> str:
    lines = [f"{self.space}: Kendall tau after t epochs ({len(self.archs)} archs, "
             f"{self.num_train_images} training images)",
             f"{'metric':<12}" + "".join(f"{'t=' + str(t):>9}" for t in self.epochs)]
    for n in self.names:
      lines.append(f"{n:<12}" + "".join(f"{self._tau(n, t):>9.3f}" for t in self.epochs))
    lines.append(f"{'params':<12}{self._tau('params', 0):>9.3f}  (parameters of the trained network, any t)")
    excluded = max((r.correlation.n_nonfinite for r in self.rows), default=0)
    if excluded:
      lines.append(f"({excluded} archs with a non-finite kernel or metric left out)")
    return "\n".join(lines)

  def tables(self):
    return {"post_training.csv": ([{"t": r.t, **r.correlation._asdict()} for r in self.rows],
                                  ["t"] + ranking.TABLE_FIELDS)}

  def figures(self):
    n = len(self.archs)
    out = {"post_training.png": lambda p: figures.tau_over_epochs(
        [(r.t, r.correlation) for r in self.rows if r.correlation.metric != "params"], p, self.names,
        title=f"{self.space} {self.truth_dataset}: τ after t epochs (n={n})")}
    t1 = min((t for t in self.epochs if t), default=0)
    if t1:  # Figure 3 / Table 1 style: at init, LGA_t and params side by side
      bars = [r.correlation for r in self.rows if r.t == 0] + [
          r.correlation._replace(metric=f"lga_eval@{t1}") for r in self.rows
          if r.t == t1 and r.correlation.metric == "lga_eval"]
      out["at_init_and_lga_t.png"] = lambda p: figures.correlation_bars(
          bars, p, title=f"{self.space} {self.truth_dataset}: τ at init and LGA_{t1} (n={n})")
    return out


def run(config: ml_collections.ConfigDict, workdir) -> PostTrainingResult:
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    train_ds, k_train = setup.training(config, job)
    archs = setup.sample_archs(config, job)
    make_measure, names = setup.metric_measure(config, job)
    ts = [0] + sorted(config.epochs)
    tracked = setup.track(config, job, archs, ts, make_measure, names, train_ds, k_train)
    rows = []
    for t in ts:
      rows += [EpochCorrelation(t, r) for r in setup.correlate(tracked, names, truth,
                                                               value=lambda a, c, t=t: a.values[(c, t)])]
    rows += [EpochCorrelation(0, r) for r in setup.correlate(tracked, ["params"], truth)]
    return PostTrainingResult(job.space.name, truth.dataset, len(train_ds.labels), ts, names, rows, tracked)
