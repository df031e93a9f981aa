"""The ``score`` job: NTK metrics of sampled NB201 architectures.

``score_fn`` builds one jitted function that computes every metric in both
BN modes for any architecture (the op array is data, so it compiles once).
``score_architectures`` runs it over a list of architectures, appending one
CSV row per architecture and skipping rows already present. ``run`` maps a
``configs/score.py`` ConfigDict onto it.
"""

from __future__ import annotations

import csv
import json
import pathlib
import time
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ntkjax import data as data_lib
from ntkjax import metrics, ntk, stats
from ntkjax.results import ResultsCSV
from ntkjax.spaces import nb201

__all__ = ["METRICS", "BN_MODES", "metric_columns", "score_fn", "score_architectures", "run"]

METRICS = ("fnorm", "mean", "ncn", "lga")
BN_MODES = ("train", "eval")


def metric_columns(bn_modes: Sequence[str] = BN_MODES) -> list[str]:
  return [f"{m}_{bn}" for bn in bn_modes for m in METRICS]


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
  fields = ["arch", "arch_index", "seed", "params", "degenerate"] + metric_columns(bn_modes) + ["seconds"]
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
    row = {"arch": arch, "arch_index": i, "seed": seed, "params": nb201.num_params(arch, net.num_classes, C=net.C, N=net.N, variant=net.variant),
           "degenerate": int(nb201.is_degenerate(arch)), "seconds": f"{time.time() - t0:.3f}"}
    row.update({k: repr(float(v)) for k, v in values.items()})
    table.append(row)
    if done % log_every == 0 or done == len(todo):
      rate = (time.time() - start) / done
      logging.info("[%d/%d] %s lga_eval=%s  %.2fs/arch, ETA %.0fs", done, len(todo), arch,
                   row.get("lga_eval", "-"), rate, rate * (len(todo) - done))
  return table


def load_ground_truth(path, arch_column: str, accuracy_column: str) -> dict[str, float]:
  """arch string -> accuracy from a CSV table (e.g. the NB201 v1x tables)."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"ground-truth table {path} does not exist")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    for col in (arch_column, accuracy_column):
      if col not in (reader.fieldnames or []):
        raise ValueError(f"{path} has no column {col!r}; columns: {reader.fieldnames}")
    out = {}
    for line, r in enumerate(reader, start=2):
      try:
        out[r[arch_column]] = float(r[accuracy_column])
      except ValueError as e:
        raise ValueError(f"{path}:{line}: bad {accuracy_column} value {r[accuracy_column]!r}") from e
  return out


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


def run(config, workdir) -> str:
  """Runs the score job described by ``configs/score.py`` in ``workdir``.

  Returns the summary table (also logged and written to summary.txt).
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cfg_json = config.to_json_best_effort(sort_keys=True, indent=1)
  saved = workdir / "config.json"
  if saved.exists() and json.loads(saved.read_text()) != json.loads(cfg_json):
    old, new = json.loads(saved.read_text()), json.loads(cfg_json)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise ValueError(f"{workdir} holds results of a different config (sections {diff} differ); "
                     "use a new --workdir")
  saved.write_text(cfg_json)

  key = jax.random.key(config.seed)
  k_init, k_data, k_arch = jax.random.split(key, 3)
  dataset = data_lib.load(config.data.name)
  images, labels, idx = data_lib.select_minibatch(k_data, dataset, config.data.batch_size,
                                                  first=config.data.first_batch)
  np.savetxt(workdir / "minibatch_indices.txt", idx, fmt="%d")
  net = nb201.Network(num_classes=dataset.num_classes, C=config.space.C, N=config.space.N,
                      variant=config.space.variant, init_scheme=config.space.init)
  archs = [nb201.encode(o) for o in nb201.sample(k_arch, config.space.num_archs)]
  table = score_architectures(
      workdir / "results.csv", archs, net=net, images=images, labels=labels, key=k_init,
      init_per_arch=config.space.init_per_arch, seed=config.seed, compat=config.metrics.compat,
      reduction=config.ntk.reduction, param_filter=config.ntk.param_filter,
      implementation=config.ntk.implementation, chunk_size=config.ntk.chunk_size or None)
  truth = None
  if config.ground_truth.path:
    truth = load_ground_truth(config.ground_truth.path, config.ground_truth.arch_column,
                              config.ground_truth.accuracy_column)
  wanted = set(archs)
  summary = summarize([r for r in table.rows if r["arch"] in wanted], metric_columns(), truth)
  (workdir / "summary.txt").write_text(summary + "\n")
  print(f"NB201 NTK metrics of {len(archs)} archs on {config.data.batch_size} {dataset.name} images:")
  print(summary)
  return summary
