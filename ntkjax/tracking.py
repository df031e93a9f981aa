"""Measurements during training: train each architecture from its
initialisation and measure it after chosen epochs, one results row per
architecture, resumable inside an architecture.

``track`` works in any ``spaces.api.Space``: for each architecture it trains
from the initialisation (shared by NB201's archs unless ``init_per_arch``,
as in the paper's code) with ``ntkjax.train``, and after each epoch t in
``ts`` calls ``measure(variables, instance)``; t = 0 is the initialisation.
A row has a column ``<name>@<t>`` per measured value plus the epoch's
training loss and accuracy. Checkpoints and the values measured so far are
kept per architecture until its row is written, so an interrupted run
resumes inside an architecture without retraining or re-measuring.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from ntkjax import data as data_lib
from ntkjax import train
from ntkjax.progress import Progress
from ntkjax.results import ResultsCSV
from ntkjax.scoring import ARCH_FIELDS, arch_fields
from ntkjax.spaces import api

__all__ = ["Measure", "MakeMeasure", "TrackedArch", "track"]

Measure = Callable[[dict, api.Instance], Mapping[str, float]]
MakeMeasure = Callable[[object], Measure]  # network -> measure


class TrackedArch(NamedTuple):
  """One architecture's measurements at every t: a results row, typed."""
  arch: str
  position: int
  benchmark_index: int | None
  seed: int
  params: int
  degenerate: bool
  nonfinite: bool                       # a measured value is NaN or a kernel was not finite
  values: Mapping[tuple[str, int], float]  # (name, t) -> value
  loss: Mapping[int, float]             # t -> mean training loss of epoch t (t >= 1)
  train_acc: Mapping[int, float]
  seconds: float

  def series(self, name: str, ts: Sequence[int]) -> list[float]:
    return [self.values[(name, t)] for t in ts]

  def at(self, t: int) -> dict[str, float]:
    """The values measured at ``t``, by name."""
    return {n: v for (n, s), v in self.values.items() if s == t}


def _columns(names, ts):
  return [f"{n}@{t}" for t in ts for n in list(names) + ["loss", "train_acc"]]


def _from_row(row: Mapping[str, str], names: Sequence[str], ts: Sequence[int]) -> TrackedArch:
  values = {(n, t): float(row[f"{n}@{t}"]) for t in ts for n in names}
  opt = lambda s: float(s) if s else None  # noqa: E731
  return TrackedArch(row["arch"], int(row["position"]), int(row["benchmark_index"]) if row["benchmark_index"] else None,
                     int(row["seed"]), int(row["params"]), bool(int(row["degenerate"])),
                     bool(int(row["nonfinite"])), values,
                     {t: opt(row[f"loss@{t}"]) for t in ts if t}, {t: opt(row[f"train_acc@{t}"]) for t in ts if t},
                     float(row["seconds"]))


def _nonfinite(values: Mapping[str, Mapping[str, float]], names) -> bool:
  """A measured value is NaN, or a measure's ``finite_*`` flag (``scoring.
  score_fn``: every kernel entry finite) is false. Infinite values are
  defined results (NCN of a singular kernel), not overflow."""
  return any(math.isnan(v[n]) for v in values.values() for n in names) or any(
      not f for v in values.values() for k, f in v.items() if k.startswith("finite_"))


def track(results_path, archs: Sequence[str], *, space: api.Space, init_key: jax.Array,
          train_data: data_lib.Dataset, ts: Sequence[int], make_measure: MakeMeasure, names: Sequence[str],
          key: jax.Array, init_per_arch: bool = False, tx: optax.GradientTransformation | None = None,
          batch_size: int = 1024, checkpoint_root=None, seed: int = 0, progress: Progress | None = None,
          clear_caches: bool = False, memory_budget=None) -> list[TrackedArch]:
  """Trains each arch of ``space`` from its initialisation and measures it
  at every t in ``ts``.

  ``make_measure(net)`` is called once per network (once in all for NB201)
  and returns ``measure(variables, instance) -> {name: value}`` for
  ``names``; ``instance`` (``spaces.api.Instance``) holds the arch, its
  extra inputs and initial variables. Initialisation as
  ``spaces.api.Instantiator`` with ``init_key``; training uses
  ``fold_in(key, arch position)``. Checkpoints go under ``checkpoint_root``
  (default: ``checkpoints/`` next to the results); ``memory_budget``
  splits an SGD step that does not fit into micro-batches
  (``train.make_epoch``). Returns the rows of
  ``archs``, in order, old and new.
  """
  ts = sorted(set(ts))
  table = ResultsCSV(results_path, list(ARCH_FIELDS) + _columns(names, ts) + ["seconds"])
  todo = [(i, a) for i, a in enumerate(archs) if a not in table.done]
  if todo:
    tx = tx or train.sgd()
    padding = train.default_padding(train_data.image_size)
    make_epoch = lambda net: train.make_epoch(net, tx, batch_size=batch_size, mean=train_data.mean,  # noqa: E731
                                              std=train_data.std, padding=padding, memory_budget=memory_budget)
    sample = jnp.zeros((1,) + train_data.images.shape[1:], jnp.float32)
    pool = api.Instantiator(space, init_key, sample, {"epoch": make_epoch, "measure": make_measure},
                            init_per_arch=init_per_arch, clear_caches=clear_caches)
    root = pathlib.Path(checkpoint_root or pathlib.Path(results_path).parent / "checkpoints")
    if progress is not None:
      progress.start(len(archs), already=len(archs) - len(todo))
    for i, arch in todo:
      t0 = time.perf_counter()
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
      seconds = time.perf_counter() - t0
      row = {**arch_fields(arch, i, seed, space, nonfinite=_nonfinite(values, names)),
             "seconds": f"{seconds:.2f}"}
      for t in ts:
        row.update({f"{n}@{t}": repr(values[str(t)][n]) for n in names})
        stats = history[t - 1] if t > 0 else None
        row[f"loss@{t}"] = repr(stats.loss) if stats else ""
        row[f"train_acc@{t}"] = repr(stats.accuracy) if stats else ""
      table.append(row)
      shutil.rmtree(ckpt)
      pool.release(inst)
      if progress is not None:
        progress.tick(arch, seconds, compiled=inst.fresh)
  by_arch = table.by_key()
  return [_from_row(by_arch[a], names, ts) for a in archs]
