"""The ``score`` job: NTK metrics of sampled architectures of any space.

``score_fn`` builds one jitted function that computes every metric in both
BN modes for a network (for NB201 the op array is data, so it compiles once
for every architecture; NB101 and NDS compile once per graph).
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
from ntkjax.spaces import api, nb201

__all__ = ["METRICS", "BN_MODES", "ARCH_FIELDS", "arch_row", "metric_columns", "score_fn", "score_architectures", "summarize",
           "Job", "prepare", "ntk_options", "load_truth", "run"]

METRICS = ("fnorm", "mean", "ncn", "lga")
BN_MODES = ("train", "eval")


def metric_columns(bn_modes: Sequence[str] = BN_MODES) -> list[str]:
  return [f"{m}_{bn}" for bn in bn_modes for m in METRICS]


ARCH_FIELDS = ["arch", "arch_index", "seed", "params", "degenerate"]


def arch_row(arch: str, index: int, seed: int, space) -> dict:
  """The leading columns of every per-architecture results row; ``space``
  is a ``spaces.api`` space."""
  return {"arch": arch, "arch_index": index, "seed": seed, "params": space.num_params(arch),
          "degenerate": int(space.is_degenerate(arch))}


def score_fn(net, *, bn_modes: Sequence[str] = BN_MODES, compat: str = "ntkjax",
             **ntk_kwargs) -> Callable:
  """Jitted ``f(variables, x, labels, *args) -> {'<metric>_<bn>': scalar}``;
  ``args`` are the network's extra inputs (NB201: the op array).

  ``ntk_kwargs`` go to ``ntk.empirical_ntk_fn`` (reduction, param_filter,
  implementation, chunk_size, ...).
  """
  kernels = {bn: ntk.empirical_ntk_fn(net, bn=bn, **ntk_kwargs) for bn in bn_modes}

  @jax.jit
  def f(variables, x, labels, *args):
    out = {}
    for bn, kernel_fn in kernels.items():
      k = kernel_fn(variables, x, *args)
      out[f"fnorm_{bn}"] = metrics.frobenius_norm(k)
      out[f"mean_{bn}"] = metrics.mean(k)
      out[f"ncn_{bn}"] = metrics.negative_condition_number(k, compat=compat)
      out[f"lga_{bn}"] = metrics.label_gradient_alignment(k, labels, compat=compat)
    return out
  return f


def score_architectures(
    results_path, archs: Sequence[str], *, images, labels, key: jax.Array, net=None, space=None,
    init_per_arch: bool = False, seed: int = 0, bn_modes: Sequence[str] = BN_MODES,
    compat: str = "ntkjax", log_every: int = 1, **ntk_kwargs) -> ResultsCSV:
  """Scores ``archs`` and appends one row each to the CSV at ``results_path``.

  Args:
    archs: architecture strings of ``space``; a row's ``arch_index`` is the
      arch's position in this list.
    space: a ``spaces.api`` space; or ``net``, an ``nb201.Network``.
    images, labels: the minibatch [N, H, W, 3] and [N].
    key: init key. With ``init_per_arch`` each architecture gets
      ``fold_in(key, arch_index)``; otherwise all share one initialisation,
      as the paper's code (which reseeds before every architecture) does.
      Spaces with a network per graph always initialise per architecture,
      and clear JAX's compilation caches after each (their executables are
      used once; otherwise host memory grows with every arch); a masked
      NB101 space initialises per architecture and compiles once.
  Returns:
    The ``ResultsCSV`` holding every row, old and new.
  """
  if space is None:
    space = api.NB201Space.from_network(net)
  fields = ARCH_FIELDS + metric_columns(bn_modes) + ["seconds"]
  table = ResultsCSV(results_path, fields)
  todo = [(i, a) for i, a in enumerate(archs) if a not in table.done]
  logging.info("%d architectures, %d already scored, %d to go", len(archs), len(archs) - len(todo), len(todo))
  if not todo:
    return table
  x, y = jnp.asarray(images), jnp.asarray(labels)
  pool = api.Instantiator(space, key, x[:1], {"score": lambda net: score_fn(
      net, bn_modes=bn_modes, compat=compat, **ntk_kwargs)}, init_per_arch=init_per_arch)
  start = time.time()
  for done, (i, arch) in enumerate(todo, start=1):
    t0 = time.time()
    inst = pool.get(arch, i)
    values = jax.device_get(inst.fns["score"](inst.variables, x, y, *inst.args))
    row = {**arch_row(arch, i, seed, space), "seconds": f"{time.time() - t0:.3f}"}
    row.update({k: repr(float(v)) for k, v in values.items()})
    table.append(row)
    pool.release(inst)
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
  net: nb201.Network | None       # the NB201 network (None in other spaces)
  images: np.ndarray
  labels: np.ndarray
  dataset: str
  k_init: jax.Array
  k_arch: jax.Array
  space: object = None            # the spaces.api space named by config.space.name
  truth: benchmarks.GroundTruth | None = None


def make_space(config, num_classes: int, universe=None):
  """The ``spaces.api`` space named by ``config.space.name``: ``nb201``,
  ``nb101`` (over the ground truth's specs) or ``nds_<darts|enas|nasnet|
  amoeba|pnas>`` (over the ground truth's archs when one is given)."""
  sp = config.space
  name = sp.get("name", "nb201")
  if name == "nb201":
    return api.NB201Space(num_classes, C=sp.C, N=sp.N, variant=sp.variant, init_scheme=sp.init)
  if name == "nb101":
    if not universe:
      raise ValueError("space 'nb101' samples from a benchmark's specs: set ground_truth.path and "
                       "ground_truth.format to 'nb101_json' or 'nb101_tfrecord'")
    return api.NB101Space(universe, num_classes, stem_channels=sp.get("stem_channels", 128),
                          num_stacks=sp.get("num_stacks", 3), modules_per_stack=sp.get("modules_per_stack", 3),
                          init_scheme=sp.init, masked=sp.get("masked", False))
  if name.startswith("nds_"):
    return api.NDSSpace(name[4:], num_classes, archs=universe, width=sp.get("width") or None,
                        depth=sp.get("depth") or None, init_scheme=sp.init, op_affine=sp.get("op_affine", True))
  raise ValueError(f"unknown space {name!r}; use nb201, nb101 or nds_<darts|enas|nasnet|amoeba|pnas>")


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
  truth, universe = read_truth(config.ground_truth)
  space = make_space(config, dataset.num_classes, universe)
  net = space.net if isinstance(space, api.NB201Space) else None
  return Job(net, images, labels, dataset.name, k_init, k_arch, space, truth)


def ntk_options(config) -> dict:
  return dict(reduction=config.ntk.reduction, param_filter=config.ntk.param_filter,
              implementation=config.ntk.implementation, chunk_size=config.ntk.chunk_size or None)


TRUTH_FORMATS = ("nb201", "nb101_json", "nb101_tfrecord", "nds_json", "nb301_naslib")


def read_truth(gt):
  """``(GroundTruth, universe)`` named by a config's ``ground_truth`` section,
  or ``(None, None)`` without a path. ``gt.format``: ``nb201`` (a CSV or a
  NATS-tss simple archive; the default), ``nb101_json``, ``nb101_tfrecord``,
  ``nds_json`` (needs ``gt.nds_space``) or ``nb301_naslib``; the universe is
  the specs / NDS archs behind the keys (None for NB201)."""
  if not gt.path:
    return None, None
  fmt = gt.get("format", "nb201") or "nb201"
  if fmt == "nb201":
    return benchmarks.load(gt.path, dataset=gt.dataset, split=gt.split, epochs=gt.epochs,
                           arch_column=gt.arch_column, accuracy_column=gt.accuracy_column,
                           index_column=gt.get("index_column") or None,
                           release=gt.get("release", "v1x")), None
  if fmt == "nb101_json":
    return benchmarks.read_nb101_json(gt.path, split=gt.split, epochs=gt.epochs)
  if fmt == "nb101_tfrecord":
    return benchmarks.read_nb101_tfrecord(gt.path, split=gt.split, epochs=gt.epochs)
  if fmt == "nds_json":
    return benchmarks.read_nds_json(gt.path, gt.nds_space)
  if fmt == "nb301_naslib":
    return benchmarks.read_nb301_naslib(gt.path)
  raise ValueError(f"unknown ground_truth.format {fmt!r}; known: {', '.join(TRUTH_FORMATS)}")


def load_truth(gt) -> benchmarks.GroundTruth | None:
  """The ground truth named by a config's ``ground_truth`` section, if any."""
  return read_truth(gt)[0]


def run(config, workdir) -> str:
  """Runs the score job described by ``configs/score.py`` in ``workdir``.

  Returns the summary table (also logged and written to summary.txt).
  """
  workdir = pathlib.Path(workdir)
  job = prepare(config, workdir)
  archs = job.space.sample(job.k_arch, config.space.num_archs)
  table = score_architectures(
      workdir / "results.csv", archs, space=job.space, images=job.images, labels=job.labels,
      key=job.k_init, init_per_arch=config.space.init_per_arch, seed=config.seed,
      compat=config.metrics.compat, **ntk_options(config))
  wanted = set(archs)
  summary = summarize([r for r in table.rows if r["arch"] in wanted], metric_columns(), job.truth)
  (workdir / "summary.txt").write_text(summary + "\n")
  print(f"{job.space.name} NTK metrics of {len(archs)} archs on {config.data.batch_size} {job.dataset} images:")
  print(summary)
  return summary
