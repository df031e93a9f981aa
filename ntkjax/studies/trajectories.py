"""Figure 2: metric values at every epoch 0..max(t) for ``config.per_group``
archs from each of the top, middle (5th-6th) and bottom accuracy deciles of
the ground truth (degenerate archs excluded)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from ntkjax import figures, ground_truth, tracking
from ntkjax.studies import setup

__all__ = ["TrajectoriesResult", "run"]


class TrajectoriesResult(NamedTuple):
  space: str
  truth_dataset: str
  per_group: int
  epochs: list[int]
  names: list[str]
  groups: dict[str, list[tracking.TrackedArch]]   # 'high' / 'mid' / 'low' -> archs

  def series(self) -> dict[str, dict[str, np.ndarray]]:
    """Group -> metric -> [archs, epochs]."""
    return {g: {n: np.array([a.series(n, self.epochs) for a in archs]) for n in self.names}
            for g, archs in self.groups.items()}

  def summary(self) -> str:
    series = self.series()
    lines = [f"median per group, epochs {self.epochs}"]
    for n in self.names:
      for g in self.groups:
        lines.append(f"{n:<12}{g:<6}" + " ".join(f"{v:.4g}" for v in np.median(series[g][n], 0)))
    return "\n".join(lines)

  def tables(self):
    return {}

  def figures(self):
    title = f"{self.space} {self.truth_dataset}: metrics during training ({self.per_group} archs per group)"
    return {"trajectories.png": lambda p: figures.trajectories(self.series(), self.epochs, self.names, p,
                                                               title=title)}


def run(config: ml_collections.ConfigDict, workdir) -> TrajectoriesResult:
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    train_ds, k_train = setup.training(config, job)
    deciles = ground_truth.deciles(truth)
    groups = {"high": deciles[9], "mid": deciles[4] + deciles[5], "low": deciles[0]}
    picks = {}
    for g, (name, members) in enumerate(groups.items()):
      members = [a for a in members if not job.space.is_degenerate(a)]
      idx = np.asarray(jax.random.choice(jax.random.fold_in(job.k_arch, g), len(members),
                                         (config.per_group,), replace=False))
      picks[name] = [members[i] for i in sorted(idx)]
    archs = [a for name in groups for a in picks[name]]
    (job.workdir / "archs.txt").write_text("".join(f"{g},{a}\n" for g in picks for a in picks[g]))
    make_measure, names = setup.metric_measure(config, job)
    ts = list(range(max(config.epochs) + 1))
    tracked = {a.arch: a for a in setup.track(config, job, archs, ts, make_measure, names, train_ds, k_train)}
    return TrajectoriesResult(job.space.name, truth.dataset, config.per_group, ts, names,
                              {g: [tracked[a] for a in picks[g]] for g in picks})
