"""Metrics after t epochs of training (paper Section 4): LGA_t and the
other metrics per t, the NTK's time evolution, and metric trajectories.

All three studies share ``track``, in any space of ``ntkjax.spaces.api``:
for each architecture, train from its initialisation (shared by NB201's
archs, as in the paper's code) with ``ntkjax.train``, and after each epoch t
in ``ts`` call ``measure(variables, instance)``; t = 0 is the
initialisation. One row per
architecture goes to a results CSV, with a column ``<name>@<t>`` per measured
value. Checkpoints and the values measured so far are kept per architecture
until its row is written, so an interrupted run resumes inside an
architecture without retraining or re-measuring.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ntkjax import benchmarks, correlation, figures, metrics, ntk, score, train
from ntkjax import data as data_lib
from ntkjax.results import ResultsCSV
from ntkjax.spaces import api

__all__ = ["track", "training_data", "run_post_training", "run_kernel_evolution", "run_trajectories"]

Measure = Callable[[dict, api.Instance], Mapping[str, float]]
MakeMeasure = Callable[[object], Measure]  # network -> measure


def training_data(config, key: jax.Array) -> data_lib.Dataset:
  """The training split, or a seeded subset of ``config.train.num_images``."""
  ds = data_lib.load(config.data.name, config.data.get("root") or None, config.train.split)
  n = config.train.num_images
  if n and n < len(ds.labels):
    idx = np.sort(np.asarray(jax.random.choice(key, len(ds.labels), (n,), replace=False)))
    ds = ds._replace(images=ds.images[idx], labels=ds.labels[idx])
  return ds


def track(results_path, archs: Sequence[str], *, space, init_key: jax.Array, train_data: data_lib.Dataset,
          ts: Sequence[int], make_measure: MakeMeasure, names: Sequence[str], key: jax.Array,
          init_per_arch: bool = False, tx=None, batch_size: int = 1024, checkpoint_root=None,
          seed: int = 0) -> ResultsCSV:
  """Trains each arch of ``space`` from its initialisation and measures it
  at every t in ``ts``.

  ``make_measure(net)`` is called once per network (once in all for NB201)
  and returns ``measure(variables, instance) -> {name: value}`` for
  ``names``; ``instance`` (``spaces.api.Instance``) holds the arch, its
  extra inputs and initial variables. Initialisation as
  ``spaces.api.Instantiator`` with ``init_key`` (archs share one in NB201
  unless ``init_per_arch``); training uses ``fold_in(key, arch position)``.
  Returns the results table.
  """
  ts = sorted(set(ts))
  fields = score.ARCH_FIELDS + [f"{n}@{t}" for t in ts for n in list(names) + ["loss", "train_acc"]] + ["seconds"]
  table = ResultsCSV(results_path, fields)
  todo = [(i, a) for i, a in enumerate(archs) if a not in table.done]
  logging.info("%d archs, %d done, %d to train for %d epochs", len(archs), len(archs) - len(todo),
               len(todo), ts[-1])
  tx = tx or train.sgd()
  padding = train.default_padding(train_data.image_size)
  make_epoch = lambda net: train.make_epoch(net, tx, batch_size=batch_size, mean=train_data.mean,  # noqa: E731
                                            std=train_data.std, padding=padding)
  sample = jnp.zeros((1,) + train_data.images.shape[1:], jnp.float32)
  pool = api.Instantiator(space, init_key, sample, {"epoch": make_epoch, "measure": make_measure},
                          init_per_arch=init_per_arch)
  root = pathlib.Path(checkpoint_root or pathlib.Path(results_path).parent / "checkpoints")
  start = time.time()
  for done, (i, arch) in enumerate(todo, start=1):
    t0 = time.time()
    inst = pool.get(arch, i)
    ckpt = root / f"{i:05d}"
    ckpt.mkdir(parents=True, exist_ok=True)
    partial_path = ckpt / "measured.json"
    values = json.loads(partial_path.read_text()) if partial_path.exists() else {}

    def record(t, v):
      if t in ts and str(t) not in values:
        values[str(t)] = {k: float(x) for k, x in jax.device_get(dict(inst.fns["measure"](v, inst))).items()}
        tmp = partial_path.with_name("measured.json.tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(partial_path)

    record(0, inst.variables)
    history = []
    if ts[-1] > 0:
      _, history = train.train(inst.candidate.net, inst.variables, inst.args, train_data, ts[-1],
                               jax.random.fold_in(key, i), tx=tx, batch_size=batch_size, padding=padding,
                               checkpoint_dir=ckpt, on_epoch=record, epoch_fn=inst.fns["epoch"])
    row = {**score.arch_row(arch, i, seed, space), "seconds": f"{time.time() - t0:.2f}"}
    for t in ts:
      row.update({f"{n}@{t}": repr(values[str(t)][n]) for n in names})
      stats = history[t - 1] if t > 0 else None
      row[f"loss@{t}"] = repr(stats.loss) if stats else ""
      row[f"train_acc@{t}"] = repr(stats.accuracy) if stats else ""
    table.append(row)
    shutil.rmtree(ckpt)
    pool.release(inst)
    rate = (time.time() - start) / done
    logging.info("[%d/%d] %s  %.1fs/arch, ETA %.0fs", done, len(todo), arch, rate, rate * (len(todo) - done))
  return table


def _metric_measure(images, labels, config) -> tuple[MakeMeasure, list[str]]:
  x, y = jnp.asarray(images), jnp.asarray(labels)

  def make_measure(net):
    f = score.score_fn(net, bn_modes=tuple(config.bn_modes), compat=config.metrics.compat,
                       **score.ntk_options(config))
    return lambda v, inst: f(v, x, y, *inst.args)
  return make_measure, score.metric_columns(config.bn_modes)


def _setup(config, workdir):
  workdir = pathlib.Path(workdir)
  job = score.prepare(config, workdir)
  k_train_data, k_train = jax.random.split(jax.random.fold_in(job.k_init, 1))
  train_ds = training_data(config, k_train_data)
  return workdir, job, train_ds, k_train


def _track_config(config, workdir, job, archs, ts, make_measure, names, train_ds, k_train,
                  name="results.csv"):
  tx = train.sgd(config.train.learning_rate, config.train.momentum, config.train.weight_decay)
  return track(workdir / name, archs, space=job.space, init_key=job.k_init, train_data=train_ds, ts=ts,
               make_measure=make_measure, names=names, key=k_train, tx=tx,
               init_per_arch=config.space.init_per_arch, batch_size=config.train.batch_size,
               seed=config.seed)


def run_post_training(config, workdir) -> list[dict]:
  """Section 4.3: Kendall τ of every metric after t epochs, t in ``config.epochs``."""
  workdir, job, train_ds, k_train = _setup(config, workdir)
  truth = correlation.require_truth(job)
  archs = correlation.sample_archs(config, job, truth, workdir)
  make_measure, names = _metric_measure(job.images, job.labels, config)
  ts = [0] + sorted(config.epochs)
  table = _track_config(config, workdir, job, archs, ts, make_measure, names, train_ds, k_train)
  rows = correlation.rows_for(table, archs)
  result = []
  for t in ts:
    for r in correlation.correlations([{**x, **{n: x[f"{n}@{t}"] for n in names}} for x in rows],
                                      names, truth, index=job.space.index):
      result.append({"t": t, **r})
  params = correlation.correlations(rows, ["params"], truth)  # the trained network's count
  result += [{"t": 0, **r} for r in params]
  correlation.write_table(workdir / "post_training.csv", result, ["t"] + correlation.TABLE_FIELDS)
  lines = [f"{job.space.name}: Kendall tau after t epochs ({len(archs)} archs, "
           f"{len(train_ds.labels)} training images)",
           f"{'metric':<12}" + "".join(f"{'t=' + str(t):>9}" for t in ts)]
  for n in names:
    taus = {r["t"]: r["tau"] for r in result if r["metric"] == n and r["subset"] == "all"}
    lines.append(f"{n:<12}" + "".join(f"{taus.get(t, np.nan):>9.3f}" for t in ts))
  tau_params = next((r["tau"] for r in params if r["subset"] == "all"), np.nan)
  lines.append(f"{'params':<12}{tau_params:>9.3f}  (parameters of the trained network, any t)")
  text = "\n".join(lines)
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  figures.tau_over_epochs(result, workdir / "post_training.png", names,
                          title=f"{job.space.name} {truth.dataset}: τ after t epochs (n={len(archs)})")
  t1 = min(config.epochs, default=0)  # Figure 3 / Table 1 style: at init, LGA_t and params side by side
  bars = [r for r in result if r["t"] == 0] + [
      {**r, "metric": f"lga_eval@{t1}"} for r in result if t1 and r["t"] == t1 and r["metric"] == "lga_eval"]
  figures.correlation_bars(bars, workdir / "at_init_and_lga_t.png",
                           title=f"{job.space.name} {truth.dataset}: τ at init and LGA_{t1} (n={len(archs)})")
  return result


def run_kernel_evolution(config, workdir) -> list[dict]:
  """Section 4.1: kernel correlation and relative difference of Θ_t to Θ₀.

  As the official code: the full logit kernel ([C, C]) of one held-out
  image in eval BN, after every epoch up to ``max(config.epochs)``.
  """
  workdir, job, train_ds, k_train = _setup(config, workdir)
  archs = job.space.sample(job.k_arch, config.space.num_archs)
  x = jnp.asarray(job.images[:1])
  initial = {}  # arch -> Θ₀, computed once (also after a resume, which skips t = 0)

  def make_measure(net):
    kernel_fn = jax.jit(ntk.empirical_ntk_fn(net, bn="eval", reduction="full",
                                             param_filter=config.ntk.param_filter))

    def measure(v, inst):
      k = kernel_fn(v, x, *inst.args)[0, 0]
      if inst.arch not in initial:
        initial[inst.arch] = kernel_fn(inst.variables, x, *inst.args)[0, 0]
      k0 = initial[inst.arch]
      return {"correlation": metrics.kernel_correlation(k0, k),
              "relative_difference": metrics.relative_kernel_difference(k0, k),
              "relative_difference_elementwise": metrics.relative_kernel_difference(k0, k, elementwise=True)}
    return measure
  names = ["correlation", "relative_difference", "relative_difference_elementwise"]
  ts = list(range(max(config.epochs) + 1))
  table = _track_config(config, workdir, job, archs, ts, make_measure, names, train_ds, k_train)
  rows = correlation.rows_for(table, archs)
  series = {n: np.array([[float(r[f"{n}@{t}"]) for t in ts] for r in rows]) for n in names}
  text = "\n".join(
      [f"mean over {len(archs)} archs, epochs {ts}"] +
      [f"{n:<32}" + " ".join(f"{v:.4g}" for v in series[n].mean(0)) for n in names])
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  figures.kernel_evolution(series, ts, workdir / "kernel_evolution.png",
                           title=f"{job.space.name}: NTK evolution during training ({len(archs)} archs)")
  return [{"arch": r["arch"], **{k: v for k, v in r.items() if "@" in k}} for r in rows]


def run_trajectories(config, workdir) -> dict:
  """Figure 2: metric values at every epoch 0..max(t) for archs from the
  top, middle and bottom accuracy deciles (``config.per_group`` each)."""
  workdir, job, train_ds, k_train = _setup(config, workdir)
  truth = correlation.require_truth(job)
  deciles = benchmarks.deciles(truth)
  groups = {"high": deciles[9], "mid": deciles[4] + deciles[5], "low": deciles[0]}
  picks = {}
  for g, (name, members) in enumerate(groups.items()):
    members = [a for a in members if not job.space.is_degenerate(a)]
    idx = np.asarray(jax.random.choice(jax.random.fold_in(job.k_arch, g), len(members),
                                       (config.per_group,), replace=False))
    picks[name] = [members[i] for i in sorted(idx)]
  archs = [a for name in groups for a in picks[name]]
  (workdir / "archs.txt").write_text("".join(f"{g},{a}\n" for g in picks for a in picks[g]))
  make_measure, names = _metric_measure(job.images, job.labels, config)
  ts = list(range(max(config.epochs) + 1))
  table = _track_config(config, workdir, job, archs, ts, make_measure, names, train_ds, k_train)
  by_arch = {r["arch"]: r for r in table.rows}
  series = {g: {n: np.array([[float(by_arch[a][f"{n}@{t}"]) for t in ts] for a in picks[g]])
                for n in names} for g in picks}
  lines = [f"median per group, epochs {ts}"]
  for n in names:
    for g in picks:
      lines.append(f"{n:<12}{g:<6}" + " ".join(f"{v:.4g}" for v in np.median(series[g][n], 0)))
  text = "\n".join(lines)
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  figures.trajectories(series, ts, names, workdir / "trajectories.png",
                       title=f"{job.space.name} {truth.dataset}: metrics during training "
                             f"({config.per_group} archs per group)")
  return series
