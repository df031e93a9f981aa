"""Scoring many architectures at once: across the devices of a ``Mesh`` and
across the processes of a ``jax.distributed`` job.

A space whose archs share one compiled network (NB201, masked NB101) takes
the architecture as data, so a batch of archs is one ``vmap`` over the op
arrays: ``batched_kernels`` splits that batch over the mesh's ``'arch'``
axis with ``shard_map`` (one or more archs per device; the variables and
the minibatch replicated) and returns every arch's kernels in one call. Processes of a
multi-host job take deterministic shares of the archs (``process_share``),
each writes its own results shard (``shard_path``), and ``merge_shards``
joins them into one table. Nothing here starts processes or talks between
them beyond ``jax.distributed``'s own runtime.
"""

from __future__ import annotations

import csv
import pathlib
import time
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ntkjax import ntk, scoring, xla_options
from ntkjax import proxies as proxies_lib
from ntkjax.progress import Progress
from ntkjax.results import write_csv
from ntkjax.spaces import api

__all__ = ["ARCH_AXIS", "arch_mesh", "batched_kernels", "process_share", "shard_path", "shard_paths",
           "score_sharded", "merge_shards"]

ARCH_AXIS = "arch"


def arch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis mesh (``'arch'``) over ``devices`` (default: all of this
  job's devices, every process's)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (ARCH_AXIS,))


def batched_kernels(net, *, mesh: Mesh, bn_modes: Sequence[str] = scoring.BN_MODES, shared_variables: bool = True,
                    **ntk_kwargs) -> Callable:
  """``f(variables, x, args) -> {bn: Θ [A, N, N...]}`` for A archs at once.

  ``args`` is the network's extra inputs stacked over archs (leading axis A,
  a multiple of the mesh size), sharded over the ``'arch'`` axis; ``x`` and,
  with ``shared_variables``, ``variables`` are replicated (otherwise
  ``variables`` are stacked over archs as well). ``ntk_kwargs`` go to
  ``ntk.empirical_ntk_fn``.
  """
  fns = {bn: ntk.empirical_ntk_fn(net, bn=bn, **ntk_kwargs) for bn in bn_modes}

  def one(variables, x, args):
    return {bn: fn(variables, x, *args) for bn, fn in fns.items()}

  # shard_map: each device runs the vmapped kernels on its own archs, and
  # nothing inside a kernel is partitioned (letting the SPMD partitioner
  # split the vmapped program gave wrong kernels on forced host devices).
  by_arch, whole = PartitionSpec(ARCH_AXIS), PartitionSpec()
  local = jax.vmap(one, in_axes=(None if shared_variables else 0, None, 0))
  return xla_options.jit(jax.shard_map(local, mesh=mesh,
                                       in_specs=(whole if shared_variables else by_arch, whole, by_arch),
                                       out_specs=by_arch, check_vma=False))


def process_share(items: Sequence, index: int | None = None, count: int | None = None) -> list:
  """This process's items: every ``count``-th from ``index`` (default: JAX's
  process index and count), so shares are disjoint, cover ``items`` and do
  not depend on timing."""
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  if not 0 <= index < count:
    raise ValueError(f"process index {index} is outside 0..{count - 1}")
  return list(items[index::count])


def shard_path(workdir, index: int | None = None, count: int | None = None) -> pathlib.Path:
  """The results shard of one process: ``results.p<index>-of-<count>.csv``."""
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  return pathlib.Path(workdir) / f"results.p{index}-of-{count}.csv"


def shard_paths(workdir, count: int) -> list[pathlib.Path]:
  return [shard_path(workdir, i, count) for i in range(count)]


def _stack(arg_lists: Sequence[tuple]) -> tuple:
  return tuple(jax.tree.map(lambda *a: np.stack([np.asarray(v) for v in a]), *col) for col in zip(*arg_lists))


def score_sharded(results_path, archs: Sequence[str], positions: Sequence[int], *, space: api.Space, images, labels,
                  key: jax.Array, mesh: Mesh, archs_per_device: int = 1, init_per_arch: bool = False, seed: int = 0,
                  bn_modes: Sequence[str] = scoring.BN_MODES, compat: str = "ntkjax",
                  progress: Progress | None = None, proxies: Sequence[str] = (), num_classes: int | None = None,
                  **ntk_kwargs) -> list[scoring.ArchScore]:
  """Scores ``archs`` (at ``positions`` of the whole list) of a space that
  shares one compilation, ``archs_per_device`` per device of ``mesh`` per
  call, appending one row per arch to the CSV at ``results_path`` as each
  batch finishes; archs already there are skipped. Rows equal
  ``scoring.score_architectures``'s for the same archs and keys. The
  ``proxies`` (as there) run per arch after each batch's kernels, on the
  default device.
  """
  if not space.shares_compilation:
    raise ValueError(f"space {space.name!r} compiles each graph; score it with scoring.score_architectures")
  space = space.batched()
  if len(archs) != len(positions):
    raise ValueError(f"{len(archs)} archs but {len(positions)} positions")
  table = scoring.ScoreTable(results_path, bn_modes, proxies)
  todo = table.start(archs, positions, progress)
  if todo:
    x, y = jax.numpy.asarray(images), jax.numpy.asarray(labels)
    net = space.candidate(todo[0][1]).net
    shared = space.shares_variables and not init_per_arch
    kernels = batched_kernels(net, mesh=mesh, bn_modes=bn_modes, shared_variables=shared, **ntk_kwargs)
    of_kernels = scoring.metrics_fn(bn_modes, compat)
    network_proxies = [n for n in proxies_lib.check_names(proxies) if proxies_lib.PROXIES[n].network]
    of_proxies = (xla_options.jit(proxies_lib.proxies_fn(net, network_proxies, num_classes=num_classes))
                  if network_proxies else None)
    k_proxies = scoring.proxy_key(key)
    init = jax.jit(net.init)
    batched_init = jax.jit(jax.vmap(lambda k, x1, a: net.init(k, x1, *a), in_axes=(0, None, 0)))
    per_call = archs_per_device * mesh.size
    variables = init(key, x[:1], *space.candidate(todo[0][1]).args) if shared else None
    for lo in range(0, len(todo), per_call):
      batch = todo[lo:lo + per_call]
      padded = batch + [batch[-1]] * (per_call - len(batch))  # a full batch keeps one compilation
      t0 = time.perf_counter()
      args = _stack([space.candidate(a).args for _, a in padded])
      if not shared:
        keys = jax.numpy.stack([jax.random.fold_in(key, p) for p, _ in padded])
        variables = batched_init(keys, x[:1], args)
      ks = jax.device_get(kernels(variables, x, args))
      seconds = (time.perf_counter() - t0) / len(batch)
      for j, (p, arch) in enumerate(batch):
        values = jax.device_get(of_kernels({bn: k[j] for bn, k in ks.items()}, y))
        if of_proxies is not None:
          v_j = variables if shared else jax.tree.map(lambda a, j=j: a[j], variables)
          values.update(jax.device_get(of_proxies(v_j, x, y, jax.random.fold_in(k_proxies, p),
                                                  *jax.tree.map(lambda a, j=j: a[j], args))))
        table.append(arch, p, seed, space, values, seconds)
        if progress is not None:
          progress.tick(arch, seconds, compiled=lo == 0 and j == 0)
  return table.rows(archs)


def _read_rows(path, columns: Sequence[str]) -> list[dict]:
  """A shard's complete rows, read only (its process may still append)."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"results shard {path} does not exist (has its process started?)")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames != list(columns):
      raise ValueError(f"{path} has columns {reader.fieldnames}, expected {list(columns)}")
    return [r for r in reader if None not in r.values()]


def merge_shards(paths: Sequence, out_path, archs: Sequence[str], columns: Sequence[str]) -> list[dict]:
  """One table at ``out_path`` with the rows of ``archs`` in order, read
  from the shard CSVs ``paths``. Raises naming the first arch no shard holds
  (a process that has not finished) or a shard with other columns."""
  rows = {}
  for path in paths:
    for r in _read_rows(path, columns):
      rows.setdefault(r["arch"], r)
  missing = [a for a in archs if a not in rows]
  if missing:
    raise ValueError(f"{len(missing)} of {len(archs)} archs are in no shard (e.g. {missing[0]}); "
                     f"shards read: {', '.join(str(p) for p in paths)}")
  ordered = [rows[a] for a in archs]
  write_csv(out_path, ordered, list(columns))
  return ordered
