"""NTK metrics per architecture: the jitted score function and the
resumable loop that appends one results row per architecture.

``score_fn`` builds one jitted function that computes every metric in the
given BN modes for a network (NB201's ops are data, so it compiles once for
every architecture; NB101 and NDS compile once per graph).
``score_architectures`` runs it over a list of architectures of a
``spaces.api.Space``, appending one CSV row per architecture as it goes and
skipping rows already present, and returns typed ``ArchScore`` rows.
``ScoreTable`` is that resumable table, shared with the sharded loop
(``ntkjax.parallel``).

With ``proxies`` (names in ``ntkjax.proxies.PROXIES``) the same call
computes the zero-cost proxies on the same initialisation and minibatch; a
row gains one column per proxy (``params`` is already a column).

A row is ``nonfinite`` when a kernel has a non-finite entry (float32
overflow, e.g. Gaussian init at full size) or an NTK metric is NaN; a NaN
proxy (jacov of a degenerate arch, say) stays NaN in its column. Its values are
kept as computed (under ``compat='paper_code'`` the official code's
substitutes, e.g. LGA 1e-4), and summaries leave such rows out.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from ntkjax import metrics, ntk, xla_options
from ntkjax import proxies as proxies_lib
from ntkjax.progress import Progress
from ntkjax.results import ResultsCSV
from ntkjax.spaces import api

__all__ = ["METRIC_FNS", "METRICS", "BN_MODES", "ARCH_FIELDS", "MetricKey", "metric_keys", "metric_columns",
           "proxy_columns", "result_columns", "ArchScore", "ScoreTable", "metrics_fn", "is_nonfinite", "result_row",
           "arch_fields", "score_fn", "proxies_jit", "score_pool", "proxy_key", "score_architectures"]

# Each metric of a kernel: name -> f(kernel, labels, compat) -> scalar. A new
# metric of Θ is one entry here (its columns are '<name>_<bn>').
METRIC_FNS: dict[str, Callable] = {
    "fnorm": lambda k, labels, compat: metrics.frobenius_norm(k),
    "mean": lambda k, labels, compat: metrics.mean(k),
    "ncn": lambda k, labels, compat: metrics.negative_condition_number(k, compat=compat),
    "lga": lambda k, labels, compat: metrics.label_gradient_alignment(k, labels, compat=compat),
}
METRICS = tuple(METRIC_FNS)
BN_MODES = ("train", "eval")
ARCH_FIELDS = ("arch", "position", "benchmark_index", "seed", "params", "degenerate", "nonfinite")


class MetricKey(NamedTuple):
  """A metric in a BN mode; its results column is ``'<metric>_<bn>'``."""
  metric: str
  bn: str

  @property
  def column(self) -> str:
    return f"{self.metric}_{self.bn}"

  @classmethod
  def parse(cls, column: str) -> "MetricKey":
    """The key of a results column such as ``'lga_eval'``."""
    for key in metric_keys():
      if key.column == column:
        return key
    raise ValueError(f"unknown metric column {column!r}; known: {', '.join(metric_columns())}")


def metric_keys(bn_modes: Sequence[str] = BN_MODES) -> tuple[MetricKey, ...]:
  bad = [b for b in bn_modes if b not in BN_MODES]
  if bad:
    raise ValueError(f"unknown BN mode {bad[0]!r}; known: {', '.join(BN_MODES)}")
  return tuple(MetricKey(m, bn) for bn in bn_modes for m in METRICS)


def metric_columns(bn_modes: Sequence[str] = BN_MODES) -> list[str]:
  return [k.column for k in metric_keys(bn_modes)]


def proxy_columns(proxies: Sequence[str] = ()) -> list[str]:
  """The results columns of ``proxies`` (``params`` is an arch field)."""
  return [p for p in proxies_lib.check_names(proxies) if p not in ARCH_FIELDS]


def result_columns(bn_modes: Sequence[str] = BN_MODES, proxies: Sequence[str] = ()) -> list[str]:
  """Every column of a scoring results CSV, in order."""
  return list(ARCH_FIELDS) + metric_columns(bn_modes) + proxy_columns(proxies) + ["seconds"]


class ArchScore(NamedTuple):
  """One scored architecture: a results row, typed."""
  arch: str
  position: int                 # position in the scored list (keys fold_in with init_per_arch)
  benchmark_index: int | None   # the benchmark's own index (NB201's official index), if known
  seed: int
  params: int
  degenerate: bool
  nonfinite: bool
  values: Mapping[str, float]   # metric column -> value
  seconds: float

  @classmethod
  def from_row(cls, row: Mapping[str, str], columns: Sequence[str]) -> "ArchScore":
    return cls(row["arch"], int(row["position"]), _optional_int(row["benchmark_index"]), int(row["seed"]),
               int(row["params"]), bool(int(row["degenerate"])), bool(int(row["nonfinite"])),
               {c: float(row[c]) for c in columns}, float(row["seconds"]))


def _optional_int(text: str) -> int | None:
  return int(text) if text else None


def arch_fields(arch: str, position: int, seed: int, space: api.Space, *, nonfinite: bool) -> dict:
  """The leading columns (``ARCH_FIELDS``) of an architecture's results row."""
  index = space.benchmark_index(arch)
  return {"arch": arch, "position": position, "benchmark_index": "" if index is None else index, "seed": seed,
          "params": space.num_params(arch), "degenerate": int(space.is_degenerate(arch)),
          "nonfinite": int(nonfinite)}


# Recent functions by (network, options): studies of one process (a
# reproduction's five, or a study run twice in a notebook) that score the
# same network share its compilations.
_FNS: collections.OrderedDict = collections.OrderedDict()
_FNS_KEPT = 16


def _memo(key, build: Callable[[], Callable]) -> Callable:
  """``build()``, or the function an equal ``key`` built (the last
  ``_FNS_KEPT``); unhashable keys build afresh."""
  try:
    f = _FNS.get(key)
  except TypeError:  # an unhashable option (a param_filter list, say)
    return build()
  if f is None:
    f = _FNS[key] = build()
    while len(_FNS) > _FNS_KEPT:
      _FNS.popitem(last=False)
  _FNS.move_to_end(key)
  return f


def score_fn(net, *, bn_modes: Sequence[str] = BN_MODES, compat: str = "ntkjax", proxies: Sequence[str] = (),
             num_classes: int | None = None, **ntk_kwargs) -> Callable:
  """``f(variables, x, labels, *args, key=None) -> {'<metric>_<bn>': scalar,
  'finite_<bn>': bool, '<proxy>': scalar}``; ``args`` are the network's
  extra inputs (NB201: the op array), ``finite_<bn>`` says whether every
  kernel entry is finite. The network proxies among ``proxies`` are one more
  jitted function (``f.proxies``, ``proxies_jit``; ``key`` seeds zen's
  draws); arch proxies (flops) are the caller's (``proxies.arch_proxies``).

  ``ntk_kwargs`` go to ``ntk.empirical_ntk_fn`` (reduction, param_filter,
  implementation, chunk_size, ...). The kernels and the metrics are two
  jitted functions: the kernels' executable holds no host callback, so JAX's
  persistent compilation cache (``jax_compilation_cache_dir``) can keep it
  across processes; the metrics' (float64 eigenvalues on the host) is small.
  ``f.kernels(variables, x, *args) -> {bn: Θ}`` is the compiled kernels
  function itself, for callers that want a kernel without compiling again.

  Calls with an equal network and equal options return the same ``f`` (the
  last ``_FNS_KEPT``), so its jitted functions compile once per process.
  """
  metric_keys(bn_modes)
  key = ("score", net, tuple(bn_modes), compat, tuple(proxies), num_classes, tuple(sorted(ntk_kwargs.items())))
  return _memo(key, lambda: _score_fn(net, bn_modes, compat, proxies, num_classes, ntk_kwargs))


def proxies_jit(net, names: Sequence[str], *, num_classes: int | None = None) -> Callable:
  """The jitted ``proxies.proxies_fn(net, names, num_classes=...)``, the same
  function for an equal network and names (as ``score_fn``), so that a
  study run again in one process traces and compiles it once."""
  names = tuple(proxies_lib.check_names(names))
  return _memo(("proxies", net, names, num_classes), lambda: xla_options.jit(
      proxies_lib.proxies_fn(net, names, num_classes=num_classes)))


def _score_fn(net, bn_modes, compat, proxies, num_classes, ntk_kwargs) -> Callable:
  kernel_fns = {bn: ntk.empirical_ntk_fn(net, bn=bn, **ntk_kwargs) for bn in bn_modes}

  @xla_options.jit
  def kernels(variables, x, *args):
    return {bn: fn(variables, x, *args) for bn, fn in kernel_fns.items()}

  of_kernels = metrics_fn(bn_modes, compat)
  network_proxies = [p for p in proxies_lib.check_names(proxies) if proxies_lib.PROXIES[p].network]
  of_proxies = proxies_jit(net, network_proxies, num_classes=num_classes) if network_proxies else None

  def f(variables, x, labels, *args, key=None):
    out = of_kernels(kernels(variables, x, *args), labels)
    if of_proxies is not None:
      if key is None:
        raise ValueError(f"proxies {network_proxies} need a key (zen's Gaussian draws)")
      out = {**out, **of_proxies(variables, x, labels, key, *args)}
    return out
  f.kernels = kernels
  f.ntk_fns = kernel_fns  # per BN mode; .plans holds the chunking a memory budget chose
  f.proxies = of_proxies
  return f


def score_pool(space: api.Space, key: jax.Array, images, *, init_per_arch: bool = False, clear_caches: bool = False,
               bn_modes: Sequence[str] = BN_MODES, compat: str = "ntkjax", proxies: Sequence[str] = (),
               num_classes: int | None = None, **ntk_kwargs) -> api.Instantiator:
  """The ``api.Instantiator`` that ``score_architectures`` scores with: each
  network's ``score_fn`` under ``fns['score']`` (built once per network),
  and its variables. Pass one to ``score_architectures(pool=...)`` to reuse
  its compiled functions afterwards (a kernel for a figure, say)."""
  return api.Instantiator(space, key, jnp.asarray(images)[:1],
                          {"score": lambda net: score_fn(net, bn_modes=bn_modes, compat=compat, proxies=proxies,
                                                         num_classes=num_classes, **ntk_kwargs)},
                          init_per_arch=init_per_arch, clear_caches=clear_caches)


def metrics_fn(bn_modes: Sequence[str] = BN_MODES, compat: str = "ntkjax") -> Callable:
  """Jitted ``g({bn: Θ}, labels) -> {'<metric>_<bn>': scalar, 'finite_<bn>': bool}``."""
  metric_keys(bn_modes)

  @jax.jit
  def of_kernels(ks, labels):
    out = {}
    for bn, k in ks.items():
      for name, fn in METRIC_FNS.items():
        out[MetricKey(name, bn).column] = fn(k, labels, compat)
      out[f"finite_{bn}"] = jnp.isfinite(k).all()
    return out
  return of_kernels


def result_row(arch: str, position: int, seed: int, space: api.Space, values: Mapping, bn_modes,
               seconds: float, proxies: Sequence[str] = ()) -> dict:
  """One results-CSV row: the arch fields, the metric and proxy columns of
  ``values`` (``score_fn``'s output; arch proxies from the space) and the
  seconds it took."""
  values = {**values, **proxies_lib.arch_proxies(space, arch, proxies)}
  columns = metric_columns(bn_modes) + proxy_columns(proxies)
  return {**arch_fields(arch, position, seed, space, nonfinite=is_nonfinite(values, bn_modes)),
          "seconds": f"{seconds:.3f}", **{c: repr(float(values[c])) for c in columns}}


class ScoreTable:
  """The resumable results CSV of a scoring loop: ``start`` says which
  archs are still to score, ``append`` writes one arch's row as soon as it
  is scored, ``rows`` reads the typed rows back, old and new."""

  def __init__(self, path, bn_modes: Sequence[str] = BN_MODES, proxies: Sequence[str] = ()):
    self.bn_modes, self.proxies = tuple(bn_modes), tuple(proxies)
    self.columns = metric_columns(bn_modes) + proxy_columns(proxies)
    self.csv = ResultsCSV(path, result_columns(bn_modes, proxies))

  def start(self, archs: Sequence[str], positions: Sequence[int],
            progress: Progress | None = None) -> list[tuple[int, str]]:
    """(position, arch) of the archs not yet in the table; ``progress``
    starts counting over all of ``archs``."""
    todo = [(p, a) for p, a in zip(positions, archs) if a not in self.csv.done]
    if todo and progress is not None:
      progress.start(len(archs), already=len(archs) - len(todo))
    return todo

  def append(self, arch: str, position: int, seed: int, space: api.Space, values: Mapping,
             seconds: float) -> dict:
    row = result_row(arch, position, seed, space, values, self.bn_modes, seconds, self.proxies)
    self.csv.append(row)
    return row

  def rows(self, archs: Sequence[str]) -> list["ArchScore"]:
    by_arch = self.csv.by_key()
    return [ArchScore.from_row(by_arch[a], self.columns) for a in archs]


def is_nonfinite(values: Mapping[str, float], bn_modes) -> bool:
  """Whether a kernel had a non-finite entry or a metric is NaN."""
  kernels_finite = all(bool(values[f"finite_{bn}"]) for bn in bn_modes)
  return not kernels_finite or any(math.isnan(float(values[c])) for c in metric_columns(bn_modes))


def proxy_key(key: jax.Array) -> jax.Array:
  """The key of the proxies' own draws (zen), apart from the init's."""
  return jax.random.fold_in(key, 0x9E37)


def score_architectures(
    results_path, archs: Sequence[str], *, space: api.Space, images, labels, key: jax.Array,
    init_per_arch: bool = False, seed: int = 0, bn_modes: Sequence[str] = BN_MODES,
    compat: str = "ntkjax", progress: Progress | None = None, clear_caches: bool = False,
    pool: api.Instantiator | None = None, proxies: Sequence[str] = (), num_classes: int | None = None,
    **ntk_kwargs) -> list[ArchScore]:
  """Scores ``archs`` of ``space``, appending one row each to the CSV at
  ``results_path``; archs already there are not scored again.

  Args:
    archs: architecture strings of ``space``; a row's ``position`` is the
      arch's position in this list.
    images, labels: the minibatch [N, H, W, 3] and [N].
    key: init key. With ``init_per_arch`` each architecture gets
      ``fold_in(key, position)``; otherwise archs of a space that shares
      variables (NB201) share one initialisation, as the paper's code (which
      reseeds before every architecture) does. Per-graph spaces always
      initialise per architecture.
    progress: reports each architecture and the time left.
    clear_caches: clear JAX's compilation caches after each per-graph arch
      (bounds host memory over long per-graph runs; ``Instantiator``).
    pool: ``score_pool(...)`` with the same options, to share its compiled
      functions with the caller; by default one of its own.
    proxies: zero-cost proxies to compute beside the NTK metrics (names in
      ``ntkjax.proxies.PROXIES``); zen draws with ``fold_in(key, position)``
      of a key folded from ``key``. ``num_classes``: the labels' class count
      (epe_nas; default the network's).
  Returns:
    The rows of ``archs``, in order, old and new.
  """
  table = ScoreTable(results_path, bn_modes, proxies)
  todo = table.start(archs, range(len(archs)), progress)
  if todo:
    x, y = jnp.asarray(images), jnp.asarray(labels)
    if pool is None:
      pool = score_pool(space, key, images, init_per_arch=init_per_arch, clear_caches=clear_caches,
                        bn_modes=bn_modes, compat=compat, proxies=proxies, num_classes=num_classes, **ntk_kwargs)
    k_proxies = proxy_key(key)
    for i, arch in todo:
      t0 = time.perf_counter()
      inst = pool.get(arch, i)
      values = jax.device_get(inst.fns["score"](inst.variables, x, y, *inst.args,
                                                key=jax.random.fold_in(k_proxies, i)))
      seconds = time.perf_counter() - t0
      row = table.append(arch, i, seed, space, values, seconds)
      pool.release(inst)
      if progress is not None:
        shown = f"lga_{bn_modes[-1]}" if bn_modes else table.columns[0]
        progress.tick(arch, seconds, compiled=inst.fresh, note=f"{shown}={row[shown]}")
  return table.rows(archs)
