"""Section 4.1 / Figure 5: kernel correlation and relative difference of
Θ_t to Θ₀ after every epoch. As the official code: the full logit kernel
([C, C]) of one held-out image, eval BN, ``config.ntk.param_filter``."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import ml_collections
import numpy as np

from ntkjax import figures, metrics, ntk, tracking, xla_options
from ntkjax.studies import setup

__all__ = ["NAMES", "KernelEvolutionResult", "run"]

NAMES = ("correlation", "relative_difference", "relative_difference_elementwise")


class KernelEvolutionResult(NamedTuple):
  space: str
  epochs: list[int]
  archs: list[tracking.TrackedArch]

  def series(self) -> dict[str, np.ndarray]:
    """Name -> [archs, epochs]."""
    return {n: np.array([a.series(n, self.epochs) for a in self.archs]) for n in NAMES}

  def summary(self) -> str:
    series = self.series()
    return "\n".join([f"mean over {len(self.archs)} archs, epochs {self.epochs}"] +
                     [f"{n:<32}" + " ".join(f"{v:.4g}" for v in series[n].mean(0)) for n in NAMES])

  def tables(self):
    rows = [{"arch": a.arch, **{f"{n}@{t}": a.values[(n, t)] for t in self.epochs for n in NAMES}}
            for a in self.archs]
    return {"kernel_evolution.csv": (rows, ["arch"] + [f"{n}@{t}" for t in self.epochs for n in NAMES])}

  def figures(self):
    title = f"{self.space}: NTK evolution during training ({len(self.archs)} archs)"
    labels = [f"{a.position}: {a.arch[:28]}…" if len(a.arch) > 28 else f"{a.position}: {a.arch}" for a in self.archs]
    return {"kernel_evolution.png": lambda p: figures.kernel_evolution(self.series(), self.epochs, p,
                                                                       labels=labels, title=title)}


def run(config: ml_collections.ConfigDict, workdir) -> KernelEvolutionResult:
  with setup.prepare(config, workdir) as job:
    train_ds, k_train = setup.training(config, job)
    archs = job.space.sample(job.k_arch, config.space.num_archs)
    x = jnp.asarray(job.images[:1])
    initial = {}  # arch -> Θ₀, computed once (also after a resume, which skips t = 0)

    def make_measure(net):
      kernel_fn = xla_options.jit(ntk.empirical_ntk_fn(net, bn="eval", reduction="full",
                                                       param_filter=config.ntk.param_filter))

      def measure(v, inst):
        k = kernel_fn(v, x, *inst.args)[0, 0]
        if inst.arch not in initial:
          initial[inst.arch] = kernel_fn(inst.variables, x, *inst.args)[0, 0]
        k0 = initial[inst.arch]
        return {"correlation": metrics.kernel_correlation(k0, k),
                "relative_difference": metrics.relative_kernel_difference(k0, k),
                "relative_difference_elementwise": metrics.relative_kernel_difference(k0, k, elementwise=True),
                "finite_eval": jnp.isfinite(k).all()}
      return measure
    ts = list(range(max(config.epochs) + 1))
    tracked = setup.track(config, job, archs, ts, make_measure, list(NAMES), train_ds, k_train)
    return KernelEvolutionResult(job.space.name, ts, tracked)
