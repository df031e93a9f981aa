"""Search-space registry: ``get(name)`` returns a space module.

Each space module offers the same surface: ``decode``/``encode``/``validate``,
``sample``, ``mutate``, ``num_params`` and a Flax ``Network``.
"""

from __future__ import annotations

import importlib
import types

import jax
import numpy as np

__all__ = ["NAMES", "get", "host_rng", "cached_jit"]

_MODULES = {"nb201": "ntkjax.spaces.nb201"}
NAMES = tuple(_MODULES)


def get(name: str) -> types.ModuleType:
  """The search-space module called ``name`` (e.g. ``'nb201'``)."""
  if name not in _MODULES:
    raise ValueError(f"unknown search space {name!r}; known: {', '.join(NAMES)}")
  return importlib.import_module(_MODULES[name])


def host_rng(key: jax.Array) -> np.random.Generator:
  """A NumPy generator seeded by a JAX key, for the host-side choices of
  samplers and mutations (variable-length picks that need no device)."""
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint32))


_JIT_CACHE: dict = {}


def cached_jit(factory, network_cls, structure, key, **net_kwargs):
  """``jax.jit(factory(network_cls(structure, **net_kwargs)))``, cached by
  ``key`` (the structure's identity), the factory and the kwargs: spaces
  with a network per graph use it so a graph scored again does not recompile."""
  cache_key = (network_cls, key, factory, tuple(sorted(net_kwargs.items())))
  if cache_key not in _JIT_CACHE:
    _JIT_CACHE[cache_key] = jax.jit(factory(network_cls(structure, **net_kwargs)))
  return _JIT_CACHE[cache_key]
