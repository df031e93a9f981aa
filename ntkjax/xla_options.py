"""XLA compiler options for the engine's jitted functions, per backend.

On XLA:CPU (jaxlib 0.10) convolutions go to YNNPACK by default
(``xla_cpu_experimental_ynn_fusion_type`` holds INDIVIDUAL_CONVOLUTION
besides INDIVIDUAL_DOT and REDUCE). Without it they stay plain
convolutions, run by XLA:CPU's own (Eigen) convolution thunk, which ran
NB201's gradients and coupled kernels faster (BENCHMARKS.md, "Tried and
rejected").
The options are passed per ``jax.jit`` (``compiler_options``), never
through the process-wide ``XLA_FLAGS``, so nothing outside the engine's own
functions changes. A jaxlib that does not accept them (an older or newer
enum) gets no options rather than an error.

Users jitting an engine function themselves get the same executable with
``xla_options.jit(fn)`` or ``jax.jit(fn, compiler_options=xla_options.
compiler_options())``.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["CPU_OPTIONS", "compiler_options", "jit"]

# The jaxlib 0.10 default list without INDIVIDUAL_CONVOLUTION.
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
               "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

_BY_BACKEND = {"cpu": CPU_OPTIONS}


@functools.cache
def _accepted(backend: str) -> bool:
  """Whether this jaxlib compiles a trivial function with the backend's options."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=_BY_BACKEND[backend]).lower(jnp.zeros(())).compile()
  except Exception:  # TypeError: jit without compiler_options; XlaRuntimeError: unknown field or enum
    return False
  return True


def compiler_options(backend: str | None = None) -> dict[str, str] | None:
  """The options for ``jax.jit`` on ``backend`` (default: JAX's default
  backend), or None where there are none or this jaxlib rejects them."""
  backend = backend or jax.default_backend()
  if backend not in _BY_BACKEND or not _accepted(backend):
    return None
  return dict(_BY_BACKEND[backend])


def jit(fun: Callable, **kwargs) -> Callable:
  """``jax.jit(fun, **kwargs)`` with ``compiler_options()`` unless the
  caller passes its own."""
  if "compiler_options" not in kwargs:
    options = compiler_options()
    if options is not None:
      kwargs["compiler_options"] = options
  return jax.jit(fun, **kwargs)
