"""Search-space registry: ``get(name)`` returns a space module.

Each space module offers the same surface: ``decode``/``encode``/``validate``,
``sample``, ``mutate``, ``num_params`` and a Flax ``Network``.
"""

from __future__ import annotations

import importlib
import types

__all__ = ["NAMES", "get"]

_MODULES = {"nb201": "ntkjax.spaces.nb201"}
NAMES = tuple(_MODULES)


def get(name: str) -> types.ModuleType:
  """The search-space module called ``name`` (e.g. ``'nb201'``)."""
  if name not in _MODULES:
    raise ValueError(f"unknown search space {name!r}; known: {', '.join(NAMES)}")
  return importlib.import_module(_MODULES[name])
