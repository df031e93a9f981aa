"""Named weight initialisation schemes for conv and dense layers.

Each scheme maps a name to a pair ``(kernel_init, bias_init)`` of Flax-style
initialisers ``init(key, shape, dtype) -> array``. Kernels are in Flax layout:
``[kh, kw, c_in, c_out]`` for convs and ``[c_in, c_out]`` for dense layers, so
fan-in is the product of every dimension but the last.

Schemes:

* ``torch_default``: PyTorch's ``nn.Conv2d``/``nn.Linear`` reset,
  ``kaiming_uniform_(a=sqrt(5))`` i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
  weights and the same bound for biases. The paper's numbers come from this.
* ``xavier``: ``xavier_normal_`` weights (Section 3.4), PyTorch-default biases,
  as the paper code's ``--init_w_type xavier``.
* ``kaiming``: ``kaiming_normal_`` (fan-in, gain sqrt(2)), PyTorch-default biases.
* ``gaussian``: standard normal N(0, 1) weights (NTK-theory "Gaussian"
  initialisation), zero biases.
* ``flax_default``: Flax's own defaults, LeCun-normal kernels and zero biases.
* ``nasbench_pytorch``: the NB101 PyTorch networks' ``_initialize_weights``
  (NASBench-PyTorch, and the zero-cost-nas copy NASLib scores NB101 with):
  conv kernels N(0, 2 / (kh * kw * c_out)), dense kernels N(0, 0.01^2),
  zero biases.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

Initializer = Callable[..., jax.Array]

__all__ = ["SCHEMES", "get", "fan_in_out", "kernel_init_with_fans"]


def fan_in_out(shape) -> tuple[int, int]:
  """Fan-in and fan-out of a Flax kernel shape ``[..., c_in, c_out]``."""
  receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
  return shape[-2] * receptive, shape[-1] * receptive


def _uniform_fan_in(key, shape, dtype=jnp.float32, fan_in=None):
  bound = 1.0 / math.sqrt(fan_in if fan_in is not None else fan_in_out(shape)[0])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _torch_bias(fan_in: int) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    return _uniform_fan_in(key, shape, dtype, fan_in=fan_in)
  return init


def _xavier_normal(key, shape, dtype=jnp.float32):
  fi, fo = fan_in_out(shape)
  return math.sqrt(2.0 / (fi + fo)) * jax.random.normal(key, shape, dtype)


def _kaiming_normal(key, shape, dtype=jnp.float32):
  return math.sqrt(2.0 / fan_in_out(shape)[0]) * jax.random.normal(key, shape, dtype)


def _gaussian(key, shape, dtype=jnp.float32):
  return jax.random.normal(key, shape, dtype)


def _nasbench_pytorch(key, shape, dtype=jnp.float32):
  if len(shape) == 2:  # dense
    return 0.01 * jax.random.normal(key, shape, dtype)
  return math.sqrt(2.0 / fan_in_out(shape)[1]) * jax.random.normal(key, shape, dtype)


def _zeros(key, shape, dtype=jnp.float32):
  del key
  return jnp.zeros(shape, dtype)


_KERNELS: dict[str, Initializer] = {
    "torch_default": _uniform_fan_in,
    "xavier": _xavier_normal,
    "kaiming": _kaiming_normal,
    "gaussian": _gaussian,
    "flax_default": jax.nn.initializers.lecun_normal(),
    "nasbench_pytorch": _nasbench_pytorch,
}
_TORCH_BIAS = {"torch_default", "xavier", "kaiming"}
SCHEMES = tuple(_KERNELS)


def get(name: str, kernel_shape) -> tuple[Initializer, Initializer]:
  """Returns ``(kernel_init, bias_init)`` for scheme ``name``.

  The bias initialiser needs the kernel's fan-in (PyTorch derives the bias
  bound from the weight), hence the ``kernel_shape`` argument.

  >>> k_init, b_init = get('torch_default', (3, 3, 16, 32))
  >>> k_init(jax.random.key(0), (3, 3, 16, 32)).shape
  (3, 3, 16, 32)
  """
  if name not in _KERNELS:
    raise ValueError(f"unknown init scheme {name!r}; known: {', '.join(SCHEMES)}")
  bias = _torch_bias(fan_in_out(kernel_shape)[0]) if name in _TORCH_BIAS else _zeros
  return _KERNELS[name], bias


def kernel_init_with_fans(name: str, fan_in, fan_out) -> Initializer:
  """Scheme ``name``'s kernel initialiser with the fans given, not read from
  the shape; they may be traced arrays.

  Networks that pad a kernel to a maximum width (``spaces/nb101_masked.py``)
  draw the whole padded kernel with the scale of its active block, whose
  size is data. With the shape's own fans it draws what ``get`` draws (for
  ``nasbench_pytorch``, a conv kernel's).
  """
  if name not in _KERNELS:
    raise ValueError(f"unknown init scheme {name!r}; known: {', '.join(SCHEMES)}")
  fi, fo = jnp.asarray(fan_in, jnp.float32), jnp.asarray(fan_out, jnp.float32)

  def init(key, shape, dtype=jnp.float32):
    if name == "torch_default":
      return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * lax.rsqrt(fi).astype(dtype)
    if name == "flax_default":  # lecun_normal: a (-2, 2)-truncated normal at std 1/sqrt(fan_in)
      std = lax.rsqrt(fi) / 0.87962566103423978
      return jax.random.truncated_normal(key, -2, 2, shape, dtype) * std.astype(dtype)
    std = {"xavier": lambda: jnp.sqrt(2.0 / (fi + fo)), "kaiming": lambda: jnp.sqrt(2.0 / fi),
           "gaussian": lambda: jnp.ones(()), "nasbench_pytorch": lambda: jnp.sqrt(2.0 / fo)}[name]()
    return jax.random.normal(key, shape, dtype) * std.astype(dtype)
  return init
