"""Device memory budgets, and the largest NTK chunking that fits one.

``ntk.empirical_ntk_fn(..., memory_budget=...)`` sizes its chunks to the
device: it compiles the kernel at the call's shapes with candidate
chunkings, reads each executable's memory (``memory_analysis()``: arguments,
outputs and XLA scratch) and keeps the largest chunk that fits. This module
holds the budget (``device_budget``), the search (``choose``) and what it
returns (``ChunkPlan``); ``ntk`` supplies the compilations.

Every implementation's memory falls with a given ``chunk_size``, since
given chunks run one after another under ``lax.map`` (the structured
kernel's coupled rows are mapped in chunks of 8 by default). Under a
budget, ``implementation='auto'`` tries its own implementation first, then
Jacobian contraction, then NTK-vector products.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple, Sequence

import jax

__all__ = ["MemoryBudgetError", "ChunkPlan", "DEFAULT", "HEADROOM", "HOST_SHARE", "device_budget",
           "resolve_budget", "compiled_bytes", "chunk_candidates", "choose", "size"]

# ``memory_budget`` default: 'auto' on accelerators, none on the CPU (host memory is the OS's to page).
DEFAULT = "accelerators"
HEADROOM = 0.1      # of the device's limit, kept free for the caller's own arrays
HOST_SHARE = 0.5    # of physical memory, for 'auto' on the CPU


class MemoryBudgetError(ValueError):
  """No chunking of any allowed implementation fits the budget."""


class ChunkPlan(NamedTuple):
  """The chunking ``choose`` picked and what it measured on the way."""
  implementation: str
  chunk_size: int | None      # None: the implementation's default chunking
  needs_bytes: int            # arguments + outputs + scratch of the compiled kernel
  budget_bytes: int
  tried: tuple[tuple[str, int | None, int], ...]  # (implementation, chunk_size, needs_bytes) in compile order


def device_budget(device: jax.Device | None = None, *, headroom: float = HEADROOM) -> int:
  """Bytes an NTK may use on ``device`` (default: the first of JAX's
  default backend): its ``bytes_limit`` (accelerators) or ``HOST_SHARE`` of
  physical memory (CPU), less ``headroom`` of it."""
  device = device or jax.devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and stats.get("bytes_limit"):
    limit = stats["bytes_limit"]
  else:
    limit = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * HOST_SHARE)
  return int(limit * (1 - headroom))


def resolve_budget(memory_budget, backend: str | None = None) -> int | None:
  """Bytes for a ``memory_budget`` argument: None (no budget), ``'auto'``
  (``device_budget()``), ``DEFAULT`` ('auto' except on the CPU) or a
  positive number of bytes; ValueError naming anything else."""
  if memory_budget is None:
    return None
  if memory_budget == DEFAULT:
    return None if (backend or jax.default_backend()) == "cpu" else device_budget()
  if memory_budget == "auto":
    return device_budget()
  if isinstance(memory_budget, (int, float)) and not isinstance(memory_budget, bool) and memory_budget > 0:
    return int(memory_budget)
  raise ValueError(f"memory_budget must be None, 'auto', {DEFAULT!r} or a number of bytes > 0, "
                   f"got {memory_budget!r}")


def compiled_bytes(compiled) -> int:
  """Device bytes a compiled executable holds while it runs: arguments,
  outputs and scratch, less what outputs alias (0 where the backend does not
  report)."""
  m = compiled.memory_analysis()
  if m is None:
    return 0
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def chunk_candidates(rows: int) -> list[int | None]:
  """None (the default chunking), then powers of two below ``rows``, down to 1."""
  out: list[int | None] = [None]
  c = 1 << max(0, (rows - 1).bit_length() - 1)
  while c >= 1:
    if c < rows:
      out.append(c)
    c //= 2
  return out


def choose(options: Sequence[tuple[str, Sequence[int | None]]], needs: Callable[[str, int | None], int],
           budget: int, *, describe: str = "the NTK") -> ChunkPlan:
  """The first implementation in ``options`` (``(name, chunk candidates
  from largest to smallest)``) with a chunk that fits ``budget``, and its
  largest such chunk. ``needs(name, chunk)`` compiles and measures; memory
  is taken to fall with the chunk, so each implementation costs its default,
  its smallest chunk and a binary search between. MemoryBudgetError
  naming the least any option needed and the budget if none fits."""
  tried: list[tuple[str, int | None, int]] = []

  def measure(name, chunk):
    b = needs(name, chunk)
    tried.append((name, chunk, b))
    return b

  for name, chunks in options:
    first = measure(name, chunks[0])
    if first <= budget:
      return ChunkPlan(name, chunks[0], first, budget, tuple(tried))
    if len(chunks) == 1 or measure(name, chunks[-1]) > budget:
      continue  # not even its smallest chunk fits
    lo, hi, best = 1, len(chunks) - 2, (chunks[-1], tried[-1][2])  # find the largest chunk that fits
    while lo <= hi:
      mid = (lo + hi) // 2
      b = measure(name, chunks[mid])
      if b <= budget:
        best, hi = (chunks[mid], b), mid - 1
      else:
        lo = mid + 1
    return ChunkPlan(name, best[0], best[1], budget, tuple(tried))
  least = min(tried, key=lambda t: t[2])
  raise MemoryBudgetError(
      f"{describe} needs at least {size(least[2])} ({least[0]}, chunk_size={least[1]}), more than the memory "
      f"budget of {size(budget)}; use fewer images, a larger device or kernel_sharding over devices (tried "
      f"{', '.join(f'{n}/{c}: {size(b)}' for n, c, b in tried)})")


def size(num_bytes: int) -> str:
  """``num_bytes`` in GiB, or MiB below one GiB."""
  return f"{num_bytes / 2**30:.2f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"
