"""What every study sets up from its config, and the shape of its result.

``prepare(config, workdir)`` reads and checks everything a run needs (the
dataset, the NTK minibatch, the ground truth, the space) *before* it writes
anything, then locks the workdir (``results.WorkdirLock``), pins the config
(``config.json``) and records the minibatch (``minibatch.csv``). The other
helpers turn config sections into engine arguments, so no engine module
reads a config. A study's ``run(config, workdir)`` returns a ``StudyResult``;
the launcher (``experiments/launch.py``) prints and writes it.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Callable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import jax
import ml_collections
import numpy as np
import optax
from absl import logging

from ntkjax import data as data_lib
from ntkjax import data_home, ground_truth, memory, provenance, proxies, ranking, scoring, spaces, tracking, train
from ntkjax.ground_truth import GroundTruth
from ntkjax.progress import Progress
from ntkjax.results import WorkdirLock, pin_config
from ntkjax.spaces import api, nb201

__all__ = ["StudyResult", "Job", "RANGES", "check_config", "prepare", "truth_from_config", "space_from_config",
           "network_label", "data_root", "Input", "inputs", "input_lines", "ntk_options", "score_options", "score_pool",
           "training_data", "optimizer", "sample_archs", "require_truth", "progress", "correlate", "official_params",
           "training", "metric_measure", "track"]


class StudyResult(Protocol):
  """What a study returns; the launcher prints ``summary()`` and writes
  ``summary.txt``, each table as CSV and each figure as PNG in the workdir
  (or in ``output_dir``, where a result has one: each process of a
  distributed sweep writes into its own directory)."""

  def summary(self) -> str:
    ...

  def tables(self) -> Mapping[str, tuple[Sequence[Mapping], Sequence[str]]]:
    """File name -> (rows, columns)."""

  def figures(self) -> Mapping[str, Callable[[pathlib.Path], pathlib.Path]]:
    """File name -> a function drawing the figure at a path."""


class Job(NamedTuple):
  """What ``prepare`` set up for a study."""
  workdir: pathlib.Path
  space: api.Space
  images: np.ndarray        # the NTK minibatch, normalised [N, H, W, 3]
  labels: np.ndarray
  dataset: str
  num_classes: int
  truth: GroundTruth | None
  k_init: jax.Array
  k_arch: jax.Array


def _integer(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


_POSITIVE = (lambda v: _integer(v) and v >= 1, "an integer >= 1")
_OPTIONAL_POSITIVE = (lambda v: v is None or (_integer(v) and v >= 1), "an integer >= 1, or None")
_SECONDS = (lambda v: _number(v) and v > 0, "a number of seconds > 0")
# Every numeric config field with a valid range, checked before a run writes
# anything (fields a config does not have are skipped).
RANGES: dict[str, tuple[Callable, str]] = {
    "seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "space.num_archs": _POSITIVE, "space.C": _POSITIVE, "space.N": _POSITIVE,
    "space.stem_channels": _POSITIVE, "space.num_stacks": _POSITIVE, "space.modules_per_stack": _POSITIVE,
    "space.width": _OPTIONAL_POSITIVE, "space.depth": _OPTIONAL_POSITIVE,
    "data.batch_size": _POSITIVE, "ntk.chunk_size": _OPTIONAL_POSITIVE,
    "ntk.memory_budget_gib": (lambda v: v is None or (_number(v) and v > 0), "a number of GiB > 0, or None"),
    "train.num_images": _OPTIONAL_POSITIVE, "train.batch_size": _POSITIVE,
    "train.learning_rate": (lambda v: _number(v) and v > 0, "a number > 0"),
    "train.momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "train.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "epochs": (lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(_integer(t) and t >= 0 for t in v),
               "a non-empty tuple of integers >= 0, e.g. '(1, 3)'"),
    "per_decile": _POSITIVE, "num_seeds": _POSITIVE, "per_group": _POSITIVE,
    "budget_s": (lambda v: v is None or (_number(v) and v > 0), "a number of seconds > 0, or None"),
    "baseline_epochs": _POSITIVE, "unit_cost_archs": _POSITIVE,
    "rs.num_archs": _POSITIVE, "rea.population_size": _POSITIVE, "rea.sample_size": _OPTIONAL_POSITIVE,
    "rea.max_evals": _OPTIONAL_POSITIVE,
    "sweep.num_archs": _OPTIONAL_POSITIVE, "sweep.archs_per_device": _POSITIVE, "sweep.merge_timeout_s": _SECONDS,
}


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks every field of ``RANGES`` that ``config`` has; ValueError
  naming the field, its value and the valid values."""
  for path, (valid, what) in RANGES.items():
    node, present = config, True
    for key in path.split("."):
      if key not in node:
        present = False
        break
      node = node[key]
    if present and not valid(node):
      raise ValueError(f"{path} = {node!r} is out of range: it must be {what}")
  if "proxies" in config:
    proxies.check_names(tuple(config.proxies))
    if "flops" in config.proxies and not spaces.get(config.space.name).flops:
      raise ValueError(f"proxy 'flops' is not counted for space {config.space.name!r} (only for "
                       f"{', '.join(n for n in spaces.NAMES if spaces.get(n).flops)}); drop it from proxies")
    probed = [n for n in ("nwot", "zen") if n in config.proxies]
    if probed and config.space.get("masked") and config.space.name == "nb101":
      raise ValueError(f"proxy {probed[0]!r} needs the per-graph NB101 network (space.masked=False): the masked "
                       "one sows no ReLU codes or features; drop nwot and zen from proxies")
  network_proxies = [n for n in config.get("proxies", ()) if n in proxies.NETWORK_PROXIES]
  if network_proxies and config.space.get("masked") and config.space.name.startswith("nds_"):
    raise ValueError(f"proxy {network_proxies[0]!r} needs the per-genotype NDS network (space.masked=False): the "
                     "cells-as-data network runs its ops inside switch branches, which sow no taps or probes")
  knas = config.get("knas")
  runs_knas = knas is not None and "knas" in config.get("methods", ())
  if runs_knas and not all(_integer(k) and 1 <= k <= config.rs.num_archs for k in knas.ks):
    raise ValueError(f"knas.ks = {tuple(knas.ks)!r} is out of range: each k must be an integer in "
                     f"[1, rs.num_archs = {config.rs.num_archs}]")
  rea = config.get("rea")
  if rea is not None and rea.sample_size is not None and rea.sample_size > rea.population_size:
    raise ValueError(f"rea.sample_size = {rea.sample_size} is out of range: it must be at most "
                     f"rea.population_size ({rea.population_size})")


def truth_from_config(gt: ml_collections.ConfigDict, images: str | None = None) -> GroundTruth | None:
  """The ground truth of a config's ``ground_truth`` section: the file at
  ``path`` (read with the section's format and columns), else the data
  home's benchmark ``table`` (``ntkjax.data_home``), else None.

  A CSV of the user's own (``path`` with format ``nb201``) is labelled as
  theirs: its file and accuracy column, and the run's dataset ``images``
  (a ``data.load`` name), not the benchmark's dataset and release that
  the section's defaults name."""
  if gt.path:
    truth = ground_truth.read(gt.path, format=gt.format, dataset=gt.dataset, split=gt.split, epochs=gt.epochs,
                              arch_column=gt.arch_column, accuracy_column=gt.accuracy_column,
                              index_column=gt.index_column or None, release=gt.release,
                              nds_space=gt.nds_space or None)
    if gt.format == "nb201" and pathlib.Path(gt.path).is_file():
      # GroundTruth's __len__ counts archs, so NamedTuple._replace cannot rebuild it
      truth = GroundTruth(**{**truth._asdict(), "dataset": images or truth.dataset, "split": gt.accuracy_column,
                             "source": f"{pathlib.Path(gt.path).name} (column {gt.accuracy_column!r})"})
    return truth
  if not gt.table:
    return None
  path, reader = data_home.truth(gt.table, dataset=gt.dataset, split=gt.split, epochs=gt.epochs,
                                 release=gt.release)
  return ground_truth.read(path, **reader)


def space_from_config(sp: ml_collections.ConfigDict, num_classes: int, truth: GroundTruth | None, *,
                      stand_in: bool = False) -> api.Space:
  """The space named by ``config.space.name`` (``spaces.registry``), over
  the ground truth's archs where the space has a universe; with
  ``stand_in`` and no ground truth, a space that draws from a benchmark's
  universe gets its registry's stand-in arch (for a plan: shapes only)."""
  options = sp.to_dict()
  name = options.pop("name")
  entry = spaces.get(name)
  if truth is None and stand_in and entry.needs_truth:
    truth = entry.stand_in()
  return spaces.build(name, num_classes, truth, **options)


def network_label(sp: ml_collections.ConfigDict) -> str:
  """The network ``config.space`` builds, in words, saying whether it is the
  benchmark's size or reduced."""
  options = sp.to_dict()
  return spaces.get(options.pop("name")).network(**options)


def data_root(data: ml_collections.ConfigDict) -> str | None:
  """``data.root``, or the data home's folder for ``data.name``."""
  if data.root or data.name not in data_home.IMAGES:
    return data.root or None
  return str(data_home.images(data.name))


class Input(NamedTuple):
  """A file a config needs: what it is, where it was found (None: missing)
  and, when missing, the error a run would stop with."""
  what: str
  path: pathlib.Path | None
  error: str = ""


def inputs(config: ml_collections.ConfigDict) -> list[Input]:
  """The images and the ground truth ``config`` reads, found or not,
  without reading them (``ntkjax-data``); for a reproduction (a config
  of ``studies``), those of every study, each once."""
  if "studies" in config:
    return list({i.what: i for s in config.studies for i in inputs(config[s])}.values())
  out, needed = [], []
  gt = config.ground_truth
  if config.data.root or config.data.name in data_home.IMAGES:  # digits16 comes with scikit-learn
    needed.append((f"{config.data.name} images", lambda: pathlib.Path(data_root(config.data))))
  if gt.path:
    needed.append((f"ground truth {gt.path}", lambda: pathlib.Path(gt.path)))
  elif gt.table:
    needed.append((f"{gt.table} table ({gt.dataset} {gt.split})", lambda: data_home.truth(
        gt.table, dataset=gt.dataset, split=gt.split, epochs=gt.epochs, release=gt.release)[0]))
  for name in (config.get("reference") or {}).values():  # published reference scores
    needed.append((f"{name} reference", lambda name=name: data_home.reference(name)))
  for what, find in needed:
    try:
      path = find()
    except (FileNotFoundError, ValueError) as e:
      out.append(Input(what, None, str(e)))
      continue
    out.append(Input(what, path) if path.exists() else Input(what, None, f"{path} does not exist"))
  return out


def input_lines(inputs) -> list[str]:
  """What a run reads, one line each as ``ntkjax-data`` prints it: found
  (where) or missing (where it goes and where to get it)."""
  if not inputs:
    return []
  lines = ["the run reads (ntkjax-data lists the data home):"]
  for i in inputs:
    found = i.path is not None
    lines.append(f"  {'present' if found else 'MISSING':<8} {i.what}: {i.path if found else i.error}")
  return lines


def _config_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


@contextlib.contextmanager
def prepare(config: ml_collections.ConfigDict, workdir) -> Iterator[Job]:
  """Checks the config's data, ground truth and space, then holds the
  workdir's lock while the study runs, with the config pinned and the
  minibatch recorded (``minibatch.csv``: index and label)."""
  workdir = pathlib.Path(workdir)
  check_config(config)
  if workdir.exists() and not workdir.is_dir():
    raise ValueError(f"workdir {workdir} is a file; give a directory (it is created if missing)")
  k_init, k_data, k_arch = jax.random.split(jax.random.key(config.seed), 3)
  # A seed of its own redraws one of them and keeps the others (init_seed=seed changes nothing).
  if config.space.get("init_seed") is not None:
    k_init = jax.random.split(jax.random.key(config.space.init_seed), 3)[0]
  if config.data.get("seed") is not None:
    k_data = jax.random.split(jax.random.key(config.data.seed), 3)[1]
  dataset = data_lib.load(config.data.name, data_root(config.data), config.data.split)
  images, labels, idx = data_lib.select_minibatch(k_data, dataset, config.data.batch_size,
                                                  first=config.data.first_batch)
  truth = truth_from_config(config.ground_truth, config.data.name)
  space = space_from_config(config.space, dataset.num_classes, truth)
  with WorkdirLock(workdir):
    pin_config(workdir, _config_dict(config), provenance.environment())
    np.savetxt(workdir / "minibatch.csv", np.stack([idx, labels], 1), fmt="%d", delimiter=",",
               header="index,label", comments="")
    yield Job(workdir, space, images, labels, dataset.name, dataset.num_classes, truth, k_init, k_arch)


def require_truth(job: Job) -> GroundTruth:
  """The ground truth ``prepare`` read for ``job``; an error without one."""
  if job.truth is None:
    raise ValueError("this study needs a ground truth: set ground_truth.table (a data-home benchmark table: "
                     f"{', '.join(data_home.TABLES)}) or ground_truth.path (a CSV, a NATS-tss archive or a "
                     "benchmark JSON)")
  return job.truth


def ntk_options(config: ml_collections.ConfigDict) -> dict:
  """``ntk.empirical_ntk_fn`` keyword arguments from ``config.ntk``."""
  n = config.ntk
  budget = n.get("memory_budget_gib")
  return dict(reduction=n.reduction, param_filter=n.param_filter, implementation=n.implementation,
              chunk_size=n.chunk_size, memory_budget=memory.DEFAULT if budget is None else int(budget * 2**30))


def score_options(config: ml_collections.ConfigDict, job: Job) -> dict:
  """``scoring.score_architectures`` keyword arguments from the config."""
  return dict(space=job.space, images=job.images, labels=job.labels, key=job.k_init,
              init_per_arch=config.space.init_per_arch, seed=config.seed, bn_modes=tuple(config.bn_modes),
              compat=config.metrics.compat, progress=progress(job.space),
              clear_caches=config.space.clear_caches, proxies=proxy_names(config), num_classes=job.num_classes,
              **ntk_options(config))


def score_pool(config: ml_collections.ConfigDict, job: Job) -> api.Instantiator:
  """``scoring.score_pool`` with the options ``score_options`` passes, for a
  study that reuses the scoring's compiled functions afterwards."""
  return scoring.score_pool(job.space, job.k_init, job.images, init_per_arch=config.space.init_per_arch,
                            clear_caches=config.space.clear_caches, bn_modes=tuple(config.bn_modes),
                            compat=config.metrics.compat, proxies=proxy_names(config),
                            num_classes=job.num_classes, **ntk_options(config))


def proxy_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The config's zero-cost proxies (``proxies``; none in configs without the field)."""
  return proxies.check_names(tuple(config.get("proxies", ())))


def score_columns(config: ml_collections.ConfigDict) -> list[str]:
  """The score columns a study's tables show: NTK metrics, proxies, params."""
  return scoring.metric_columns(config.bn_modes) + scoring.proxy_columns(proxy_names(config)) + ["params"]


def training_data(config: ml_collections.ConfigDict, key: jax.Array) -> data_lib.Dataset:
  """The training split, or a seeded subset of ``config.train.num_images``."""
  ds = data_lib.load(config.data.name, data_root(config.data), config.train.split)
  n = config.train.num_images
  if n and n < len(ds.labels):
    idx = np.sort(np.asarray(jax.random.choice(key, len(ds.labels), (n,), replace=False)))
    ds = ds._replace(images=ds.images[idx], labels=ds.labels[idx])
  return ds


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The paper's SGD from ``config.train``."""
  t = config.train
  return train.sgd(t.learning_rate, t.momentum, t.weight_decay)


def sample_archs(config: ml_collections.ConfigDict, job: Job) -> list[str]:
  """``config.space.num_archs`` archs, seeded random or the first official
  indices, recorded in ``workdir/archs.txt``."""
  n = config.space.num_archs
  if config.space.sampling == "random":
    archs = job.space.sample(job.k_arch, n)
  elif config.space.sampling == "index_order":  # the paper code's first-n archs
    truth = require_truth(job)
    if not truth.index:
      raise ValueError(f"sampling='index_order' needs official indices; {truth.source} has none "
                       "(set ground_truth.index_column)")
    archs = sorted(truth.index, key=truth.index.get)[:n]
  else:
    raise ValueError(f"unknown space.sampling {config.space.sampling!r}; use 'random' or 'index_order'")
  (job.workdir / "archs.txt").write_text("\n".join(archs) + "\n")
  return archs


def progress(space: api.Space, every: int = 1) -> Progress:
  """Progress reported to the log, the time left predicted from steady
  archs (or, per graph, from archs that compile)."""
  return Progress(logging.info, every=every, compiles_each=not space.shares_compilation)


def correlate(rows: Sequence, columns: Sequence[str], truth: GroundTruth, *,
              value: Callable | None = None, **kwargs) -> list[ranking.CorrelationRow]:
  """``ranking.correlations`` of typed rows (``scoring.ArchScore``, or
  anything with ``arch``, ``degenerate``, ``nonfinite``); ``value(row,
  column)`` reads a score (default: ``row.values[column]``, and the
  ``params`` attribute for ``'params'``)."""
  value = value or (lambda r, c: r.params if c == "params" else r.values[c])
  return ranking.correlations([r.arch for r in rows], {c: np.array([value(r, c) for r in rows], np.float64)
                                                     for c in columns}, truth,
                              degenerate=np.array([r.degenerate for r in rows], bool),
                              nonfinite=np.array([r.nonfinite for r in rows], bool), **kwargs)


def official_params(job: Job) -> Callable[[str], int]:
  """The benchmark's own parameter count of an arch: NB201's official
  network (C=16, N=5, the benchmark variant) whatever network is scored;
  other spaces count in the space's network."""
  if job.space.name == "nb201":
    return lambda a: nb201.num_params(a, job.num_classes)
  return job.space.num_params


def training(config: ml_collections.ConfigDict, job: Job) -> tuple[data_lib.Dataset, jax.Array]:
  """The training set of ``config.train`` and the training key (both derived
  from ``fold_in(k_init, 1)``, so studies that train agree)."""
  k_data, k_train = jax.random.split(jax.random.fold_in(job.k_init, 1))
  return training_data(config, k_data), k_train


def metric_measure(config: ml_collections.ConfigDict, job: Job) -> tuple[Callable, list[str]]:
  """``tracking.track``'s ``make_measure`` for the four metrics in
  ``config.bn_modes`` on the job's minibatch, and the names it measures."""
  x, y = jax.numpy.asarray(job.images), jax.numpy.asarray(job.labels)

  def make_measure(net):
    f = scoring.score_fn(net, bn_modes=tuple(config.bn_modes), compat=config.metrics.compat,
                         **ntk_options(config))
    return lambda v, inst: f(v, x, y, *inst.args)
  return make_measure, scoring.metric_columns(config.bn_modes)


def track(config: ml_collections.ConfigDict, job: Job, archs: Sequence[str], ts: Sequence[int],
          make_measure: Callable, names: Sequence[str], train_data: data_lib.Dataset, key: jax.Array,
          name: str = "results.csv") -> list[tracking.TrackedArch]:
  """``tracking.track`` with the config's optimiser, batch size, init and
  memory budget (``ntk.memory_budget_gib``, which bounds the SGD step too)."""
  return tracking.track(job.workdir / name, archs, space=job.space, init_key=job.k_init, train_data=train_data,
                        ts=ts, make_measure=make_measure, names=names, key=key, tx=optimizer(config),
                        init_per_arch=config.space.init_per_arch, batch_size=config.train.batch_size,
                        seed=config.seed, progress=progress(job.space), clear_caches=config.space.clear_caches,
                        memory_budget=ntk_options(config)["memory_budget"])
