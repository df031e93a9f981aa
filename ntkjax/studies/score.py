"""The ``score`` job: the four NTK metrics in each BN mode for sampled
architectures of any space, with Kendall τ when a ground truth is given."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ntkjax import figures, scoring, spaces, stats
from ntkjax.ground_truth import GroundTruth
from ntkjax.studies import setup

__all__ = ["ScoreResult", "run", "summarize", "next_command"]


def summarize(rows: Sequence[scoring.ArchScore], columns: Sequence[str], truth: GroundTruth | None = None) -> str:
  """A text table: per metric column the median over the finite rows,
  Kendall τ (± jackknife s.e.) and Spearman ρ against the ground truth's
  accuracy, or against the parameter count without one (as the figure;
  NaN scores ranked last)."""
  finite = [r for r in rows if not r.nonfinite]
  if truth is not None:
    target = {r.arch: truth[r.arch] for r in finite if r.arch in truth}
    against = f"accuracy ({truth_label(truth)})"
  else:
    target = {r.arch: float(r.params) for r in finite}
    against = "parameter count (no ground truth)"
  lines = [f"tau and rho against {against}, over {len(target)} archs:",
           f"{'metric':<12}{'n':>6}{'median':>14}{'tau':>9}{'±se':>7}{'rho':>9}"]
  for col in columns:
    vals = np.array([r.values[col] for r in finite])
    line = f"{col:<12}{len(vals):>6}{np.median(vals) if len(vals) else np.nan:>14.5g}"
    pairs = [(r.values[col], target[r.arch]) for r in finite if r.arch in target]
    if len(pairs) >= 2:
      s, t = np.array(pairs).T
      tau = stats.kendall_tau(s, t, nan_policy="last")
      line += f"{tau.value:>9.3f}{tau.se:>7.3f}{stats.spearman_rho(s, t, nan_policy='last').value:>9.3f}"
    lines.append(line)
  if len(finite) < len(rows):
    lines.append(f"{len(rows) - len(finite)} of {len(rows)} archs left out: a kernel or metric was not finite "
                 "(column 'nonfinite' in results.csv)")
  return "\n".join(lines)


def truth_label(truth: GroundTruth) -> str:
  """A ground truth in words: its dataset and split, and the file it came from."""
  return f"{truth.dataset} {truth.split}, {truth.source}"


class ScoreResult(NamedTuple):
  space: str
  dataset: str
  num_images: int
  scores: list[scoring.ArchScore]
  columns: list[str]
  truth: GroundTruth | None
  network: str                 # the network scored, in words (reduced or the benchmark's)
  kernel_arch: str             # the arch whose kernels are drawn
  kernels: dict                # bn -> Θ [N, N] of kernel_arch
  labels: np.ndarray           # the minibatch's labels
  next_command: str            # what to run next for Kendall τ at a larger scale

  def summary(self) -> str:
    return (f"{self.space} NTK metrics of {len(self.scores)} archs on {self.num_images} {self.dataset} images, "
            f"{self.network}:\n" + summarize(self.scores, self.columns, self.truth)
            + f"\n\nNext: {self.next_command}")

  def tables(self):
    return {}

  def figures(self):
    finite = [r for r in self.scores if not r.nonfinite]
    with_truth = self.truth is not None and all(r.arch in self.truth for r in finite)
    target = [self.truth[r.arch] if with_truth else r.params for r in finite]
    label = f"accuracy (%), {self.truth.dataset} {self.truth.split}" if with_truth else "parameters"
    where = f"{len(finite)} archs, {self.num_images} {self.dataset} images"
    return {
        "metrics.png": lambda path: figures.metric_scatter(
            {c: [r.values[c] for r in finite] for c in self.columns}, target, path, target_label=label,
            title=f"{self.space} NTK metrics against {label.split(',')[0]} ({where})"),
        "kernel.png": lambda path: figures.kernel_heatmaps(
            self.kernels, self.labels, path, title=f"NTK of {self.kernel_arch}\n({self.num_images} images)"),
    }


def next_command(config: ml_collections.ConfigDict, truth: GroundTruth | None) -> str:
  """The command that gives Kendall τ from here: against the benchmark's
  accuracy if this run had none, else at the paper's scale."""
  name = config.space.name
  space = "" if name == "nb201" else f",{name}"
  if truth is None:
    table = spaces.get(name).truth("cifar10")["table"]
    override = "" if name in ("nb201", "nds_darts") else f" --config.ground_truth.table={table}"
    return (f"Kendall tau against benchmark accuracy: ntkjax-score --config cifar10{space}{override} --workdir W "
            f"(ntkjax-data score:cifar10{space} says whether its data is there)")
  return (f"Kendall tau at the paper's scale (1,000 archs, 256 images, the benchmark's network, a GPU): "
          f"ntkjax-rank-correlation --config full{space} --workdir W")


def run(config: ml_collections.ConfigDict, workdir) -> ScoreResult:
  """Runs the score job described by ``configs/score.py`` in ``workdir``."""
  with setup.prepare(config, workdir) as job:
    archs = job.space.sample(job.k_arch, config.space.num_archs)
    pool = setup.score_pool(config, job)
    rows = scoring.score_architectures(job.workdir / "results.csv", archs, pool=pool,
                                       **setup.score_options(config, job))
    inst = pool.get(archs[0], 0)  # the first arch's kernels, from the scoring's compiled function
    kernels = jax.device_get(inst.fns["score"].kernels(inst.variables, jnp.asarray(job.images), *inst.args))
    network = setup.network_label(config.space)
    return ScoreResult(job.space.name, job.dataset, len(job.labels), rows, setup.score_columns(config)[:-1],
                       job.truth, network, archs[0], dict(kernels), np.asarray(job.labels),
                       next_command(config, job.truth))
