"""Identical cells in a row as one ``lax.scan``, with their variables kept
apart.

A stage of N identical cells traced one by one costs N traces, and XLA
compiles N copies of the cell in every pass (forward, backward, the
structured NTK's batched backwards, each proxy). ``apply`` traces and
compiles the cell once: it stacks the cells' variables, scans one
functional ``cell.apply`` over them and writes what the cells would have
written (running statistics, the structured NTK's taps and perturbations,
the proxies' probes) back under each cell's own name. The variable tree is
the unrolled one, so parameter paths, counts, filters and weight copies
from the official networks are unchanged; only the traced program differs.

Initialisation stays unrolled (each cell creates its own variables).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ntkjax import taps

__all__ = ["apply"]


def _mutable(parent: nn.Module, present: Sequence[str]) -> list[str]:
  """The collections the cells may write: those the caller made mutable."""
  candidates = dict.fromkeys([*present, "batch_stats", taps.TAPS, taps.PERTURBATIONS, taps.PROBES])
  return [c for c in candidates if parent.is_mutable_collection(c)]


def apply(parent: nn.Module, cell: nn.Module, names: Sequence[str], x: jax.Array, *args, **kwargs) -> jax.Array:
  """``x`` through the cells ``names`` of ``parent`` in order, each
  ``cell`` (an unbound module, the same definition for all) with that
  name's variables: the output of calling them one after another, as one
  scan. ``args`` and ``kwargs`` go to every cell's call."""
  variables = parent.variables
  stacked = {}
  for col, tree in variables.items():
    parts = [tree[n] for n in names if n in tree]
    if parts and len(parts) != len(names):
      raise ValueError(f"collection {col!r} holds variables for {len(parts)} of the cells {list(names)}")
    if parts:
      stacked[col] = jax.tree.map(lambda *a: jnp.stack(a), *parts)
  mutable = _mutable(parent, list(variables))

  y, state = lax.scan(lambda y, v: cell.apply(v, y, *args, mutable=mutable, **kwargs), x, stacked)
  for i, name in enumerate(names):
    for col, tree in state.items():
      parent.put_variable(col, name, jax.tree.map(lambda a: a[i], tree))
  return y
