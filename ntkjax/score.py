"""The ``score`` job: NTK metrics of sampled NB201 architectures.

``score_fn`` builds one jitted function that computes every metric in both
BN modes for any architecture (the op array is data, so it compiles once).
``score_architectures`` runs it over a list of architectures, appending one
CSV row per architecture and skipping rows already present. ``run`` maps a
``configs/score.py`` ConfigDict onto it.
"""

from __future__ import annotations

import pathlib
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ntkjax import benchmarks, metrics, ntk, stats
from ntkjax import data as data_lib
from ntkjax.results import ResultsCSV, pin_config
from ntkjax.spaces import nb201

__all__ = ["METRICS", "BN_MODES", "ARCH_FIELDS", "arch_row", "metric_columns", "score_fn", "score_architectures", "summarize",
           "Job", "prepare", "ntk_options", "load_truth", "run"]

METRICS = ("fnorm", "mean", "ncn", "lga")
BN_MODES = ("train", "eval")


def metric_columns(bn_modes: Sequence[str] = BN_MODES) -> list[str]:
  return [f"{m}_{bn}" for bn in bn_modes for m in METRICS]


ARCH_FIELDS = ["arch", "arch_index", "seed", "params", "degenerate"]


def arch_row(arch: str, index: int, seed: int, net) -> dict:
  """The leading columns of every per-architecture results row."""
  return {"arch": arch, "arch_index": index, "seed": seed, "params": net.param_count(arch),
          "degenerate": int(nb201.is_degenerate(arch))}


def score_fn(net, *, bn_modes: Sequence[str] = BN_MODES, compat: str = "ntkjax",
             **ntk_kwargs) -> Callable:
  """Jitted ``f(variables, x, labels, ops) -> {'<metric>_<bn>': scalar}``.

  ``ntk_kwargs`` go to ``ntk.empirical_ntk_fn`` (reduction, param_filter,
  implementation, chunk_size, ...).
  """
  kernels = {bn: ntk.empirical_ntk_fn(net, bn=bn, **ntk_kwargs) for bn in bn_modes}

  @jax.jit
  def f(variables, x, labels, ops):
    out = {}
    for bn, kernel_fn in kernels.items():
      k = kernel_fn(variables, x, ops)
      out[f"fnorm_{bn}"] = metrics.frobenius_norm(k)
      out[f"mean_{bn}"] = metrics.mean(k)
      out[f"ncn_{bn}"] = metrics.negative_condition_number(k, compat=compat)
      out[f"lga_{bn}"] = metrics.label_gradient_alignment(k, labels, compat=compat)
    return out
  return f


def score_architectures(
    results_path, archs: Sequence[str], *, net, images, labels, key: jax.Array,
    init_per_arch: bool = False, seed: int = 0, bn_modes: Sequence[str] = BN_MODES,
    compat: str = "ntkjax", log_every: int = 1, **ntk_kwargs) -> ResultsCSV:
  """Scores ``archs`` and appends one row each to the CSV at ``results_path``.

  Args:
    archs: NB201 arch strings; each row's ``arch_index`` is its position.
    net: an ``nb201.Network``.
    images, labels: the minibatch [N, H, W, 3] and [N].
    key: init key. With ``init_per_arch`` each architecture gets
      ``fold_in(key, arch_index)``; otherwise all share one initialisation,
      as the paper's code (which reseeds before every architecture) does.
  Returns:
    The ``ResultsCSV`` holding every row, old and new.
  """
  fields = ARCH_FIELDS + metric_columns(bn_modes) + ["seconds"]
  table = ResultsCSV(results_path, fields)
  todo = [(i, a) for i, a in enumerate(archs) if a not in table.done]
  logging.info("%d architectures, %d already scored, %d to go", len(archs), len(archs) - len(todo), len(todo))
  if not todo:
    return table
  x, y = jnp.asarray(images), jnp.asarray(labels)
  init = jax.jit(net.init)
  f = score_fn(net, bn_modes=bn_modes, compat=compat, **ntk_kwargs)
  shared = None if init_per_arch else init(key, x[:1], jnp.zeros(6, jnp.int32))
  start = time.time()
  for done, (i, arch) in enumerate(todo, start=1):
    t0 = time.time()
    ops = jnp.asarray(nb201.decode(arch))
    variables = init(jax.random.fold_in(key, i), x[:1], ops) if init_per_arch else shared
    values = jax.device_get(f(variables, x, y, ops))
    row = {**arch_row(arch, i, seed, net), "seconds": f"{time.time() - t0:.3f}"}
    row.update({k: repr(float(v)) for k, v in values.items()})
    table.append(row)
    if done % log_every == 0 or done == len(todo):
      rate = (time.time() - start) / done
      logging.info("[%d/%d] %s lga_eval=%s  %.2fs/arch, ETA %.0fs", done, len(todo), arch,
                   row.get("lga_eval", "-"), rate, rate * (len(todo) - done))
  return table


def summarize(rows: Sequence[Mapping[str, str]], columns: Sequence[str],
              truth: Mapping[str, float] | None = None) -> str:
  """A text table: per metric column the median and, with ground truth,
  Kendall τ and Spearman ρ (NaN scores ranked last)."""
  lines = [f"{'metric':<12}{'n':>6}{'median':>14}" + (f"{'tau':>9}{'rho':>9}" if truth else "")]
  for col in columns:
    vals = np.array([float(r[col]) for r in rows])
    line = f"{col:<12}{len(vals):>6}{np.median(vals):>14.5g}"
    if truth:
      pairs = [(float(r[col]), truth[r["arch"]]) for r in rows if r["arch"] in truth]
      if len(pairs) >= 2:
        s, t = np.array(pairs).T
        line += f"{stats.kendall_tau(s, t, nan_policy='last').value:>9.3f}"
        line += f"{stats.spearman_rho(s, t, nan_policy='last').value:>9.3f}"
    lines.append(line)
  return "\n".join(lines)


class Job(NamedTuple):
  """What every scoring experiment sets up from its config."""
  net: nb201.Network
  images: np.ndarray
  labels: np.ndarray
  dataset: str
  k_init: jax.Array
  k_arch: jax.Array


def prepare(config, workdir) -> Job:
  """Pins the config to ``workdir``, loads the dataset, picks and records the
  minibatch (``minibatch.csv``: index and label) and builds the network."""
  pin_config(workdir, config)
  key = jax.random.key(config.seed)
  k_init, k_data, k_arch = jax.random.split(key, 3)
  dataset = data_lib.load(config.data.name, config.data.get("root") or None,
                          config.data.get("split", "test"))
  images, labels, idx = data_lib.select_minibatch(k_data, dataset, config.data.batch_size,
                                                  first=config.data.first_batch)
  np.savetxt(pathlib.Path(workdir) / "minibatch.csv", np.stack([idx, labels], 1), fmt="%d",
             delimiter=",", header="index,label", comments="")
  net = nb201.Network(num_classes=dataset.num_classes, C=config.space.C, N=config.space.N,
                      variant=config.space.variant, init_scheme=config.space.init)
  return Job(net, images, labels, dataset.name, k_init, k_arch)


def ntk_options(config) -> dict:
  return dict(reduction=config.ntk.reduction, param_filter=config.ntk.param_filter,
              implementation=config.ntk.implementation, chunk_size=config.ntk.chunk_size or None)


def load_truth(gt) -> benchmarks.GroundTruth | None:
  """The ground truth named by a config's ``ground_truth`` section, if any."""
  if not gt.path:
    return None
  return benchmarks.load(gt.path, dataset=gt.dataset, split=gt.split, epochs=gt.epochs,
                         arch_column=gt.arch_column, accuracy_column=gt.accuracy_column,
                         index_column=gt.get("index_column") or None)


def run(config, workdir) -> str:
  """Runs the score job described by ``configs/score.py`` in ``workdir``.

  Returns the summary table (also logged and written to summary.txt).
  """
  workdir = pathlib.Path(workdir)
  job = prepare(config, workdir)
  archs = [nb201.encode(o) for o in nb201.sample(job.k_arch, config.space.num_archs)]
  table = score_architectures(
      workdir / "results.csv", archs, net=job.net, images=job.images, labels=job.labels,
      key=job.k_init, init_per_arch=config.space.init_per_arch, seed=config.seed,
      compat=config.metrics.compat, **ntk_options(config))
  truth = load_truth(config.ground_truth)
  wanted = set(archs)
  summary = summarize([r for r in table.rows if r["arch"] in wanted], metric_columns(), truth)
  (workdir / "summary.txt").write_text(summary + "\n")
  print(f"NB201 NTK metrics of {len(archs)} archs on {config.data.batch_size} {job.dataset} images:")
  print(summary)
  return summary
