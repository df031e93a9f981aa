"""One large kernel split over devices: Θ's row blocks on different devices.

With D devices on a mesh axis, device d computes the rows of J belonging to
samples ``d·N/D .. (d+1)·N/D - 1`` (``ntk.jacobian_blocks_fn``: independent
samples run only their own images; coupled ones, train BN, run one VJP of the
whole replicated batch per row) and then passes its block round a ring
(``lax.ppermute``), contracting it with each block it receives: D - 1
transfers, and no device ever holds more than two blocks of J. Device d ends
with Θ[its rows, all columns], and the result is one [N, N(, K, K)] array
sharded by rows over the mesh axis.

Memory per device ~ 2·(N/D)·K·P floats for J plus (N/D)·N for its rows of Θ,
against N·K·P on one device, which is what makes N = 512 (ImageNet16-120's
minibatch) or more fit. Compute splits evenly: each device does N/D of the
per-sample gradients or batched backwards.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from ntkjax import memory, ntk, xla_options

__all__ = ["ROWS_AXIS", "rows_mesh", "sharded_ntk_fn"]

ROWS_AXIS = "rows"


def rows_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis mesh (``'rows'``) over ``devices`` (default: all)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (ROWS_AXIS,))


def sharded_ntk_fn(apply_fn, *, mesh: Mesh, axis: str = ROWS_AXIS, normalize_trace: bool = False,
                   memory_budget: int | str | None = memory.DEFAULT, **ntk_kwargs) -> Callable[..., jax.Array]:
  """``ntk_fn(variables, x, *args) -> Θ`` as ``ntk.empirical_ntk_fn`` (same
  options, except ``'ntk_vector_products'`` and ``max_jacobian_bytes``), with
  Θ's rows split over ``mesh``'s ``axis``. ``variables``, ``x`` and
  ``args`` are replicated; N must be a multiple of the axis size.

  ``memory_budget`` (with no ``chunk_size``) bounds each device's memory as
  ``empirical_ntk_fn``'s does: at the first call's shapes it compiles the
  sharded kernel for candidate implementations and chunks of each device's
  rows and keeps the largest chunk that fits (``ntk_fn.plans``).
  """
  if ntk_kwargs.get("chunk_size") is not None:
    memory_budget = None
  memory.resolve_budget(memory_budget, "cpu")  # a bad value fails here
  plans: dict = {}
  built: dict = {}

  def sharded(implementation, chunk_size):
    key = (implementation, chunk_size)
    if key not in built:
      built[key] = _sharded(apply_fn, mesh, axis, normalize_trace,
                            {**ntk_kwargs, "implementation": implementation, "chunk_size": chunk_size})
    return built[key]

  default = ntk_kwargs.get("implementation", "auto")
  sharded(default, ntk_kwargs.get("chunk_size"))  # bad options fail here, not at the first call

  def ntk_fn(variables, x, *args):
    budget = memory.resolve_budget(memory_budget)
    if budget is None:
      return sharded(default, ntk_kwargs.get("chunk_size"))(variables, x, *args)
    key = ntk.shape_key(variables, x, args)
    if key not in plans:
      rows = ntk.problem_rows(apply_fn, ntk_kwargs, variables, x, args)
      plans[key] = _plan(sharded, default, rows, mesh.shape[axis], variables, x, args, budget)
    return sharded(plans[key].implementation, plans[key].chunk_size)(variables, x, *args)

  ntk_fn.plans = plans
  return ntk_fn


def _plan(sharded, default, problem, size, variables, x, args, budget) -> memory.ChunkPlan:
  """The implementation and chunk of one device's rows that fit ``budget``."""
  rows, independent, impl = problem
  names = [impl] if default != "auto" else [n for n in ("structured", "jacobian_contraction")
                                              if n == impl or impl == "structured"]
  local = rows // size

  def chunks(name):
    if name == "structured" and independent:
      return memory.chunk_candidates(local // (x.shape[0] // size))  # output columns
    return memory.chunk_candidates(x.shape[0] // size if independent else local)

  abstract = ntk.abstract((variables, x, args))
  return memory.choose([(n, chunks(n)) for n in names],
                       lambda n, c: memory.compiled_bytes(sharded(n, c).lower(*abstract[:2], *abstract[2]).compile()),
                       budget, describe=f"each device's rows of the NTK of {x.shape[0]} samples")


def _sharded(apply_fn, mesh: Mesh, axis: str, normalize_trace: bool, ntk_kwargs: dict):
  """The jitted sharded kernel for fixed options."""
  size = mesh.shape[axis]
  reduction = ntk_kwargs.get("reduction", "sum_logits")
  blocks_fn = ntk.jacobian_blocks_fn(apply_fn, **ntk_kwargs)

  def local(variables, x, *args):
    n = x.shape[0]
    if n % size:
      raise ValueError(f"{n} samples do not split into {size} equal row blocks (mesh axis {axis!r})")
    m = n // size
    d = lax.axis_index(axis)
    mine = blocks_fn(variables, x, *args, samples=(d * m, m))
    held, cols = mine, []
    for step in range(size):  # after `step` shifts this device holds device (d + step) % size's block
      cols.append(ntk.contract_blocks(mine, held, reduction))
      if step < size - 1:
        held = lax.ppermute(held, axis, perm=[((j + 1) % size, j) for j in range(size)])
    by_owner = jnp.roll(jnp.stack(cols), d, axis=0)  # [size, m, m(, K, K)], indexed by the owner of the columns
    theta = jnp.moveaxis(by_owner, 0, 1).reshape((m, n) + by_owner.shape[3:])
    if reduction == "trace" and normalize_trace:
      theta = theta / mine[0].shape[1]
    return theta

  def ntk_fn(variables, x, *args):
    replicated = PartitionSpec()
    fn = jax.shard_map(local, mesh=mesh, in_specs=(replicated, replicated) + (replicated,) * len(args),
                       out_specs=PartitionSpec(axis), check_vma=False)
    return fn(variables, x, *args)

  return xla_options.jit(ntk_fn)
