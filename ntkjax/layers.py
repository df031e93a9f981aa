"""PyTorch-semantics conv, BatchNorm and pooling for NHWC Flax networks.

The NAS benchmarks were trained in PyTorch, so ntkjax's layers reproduce its
numerics rather than Flax's defaults:

* convs pad symmetrically with an explicit integer padding (``'SAME'`` pads
  asymmetrically at stride 2 and would not match);
* BatchNorm normalises with the biased batch variance, updates the running
  variance with the unbiased one, uses ``momentum=0.1`` in PyTorch's sense
  (``running = 0.9 running + 0.1 batch``) and ``eps=1e-5``; with
  ``track_running_stats=False`` it always uses batch statistics;
* 3x3 average pooling excludes padding from the count
  (``count_include_pad=False``).

Each layer is a pure function of arrays plus a thin setup-based Flax module
that owns the variables. The split lets a parent module read a child's arrays
and run the pure function inside ``lax.switch`` (see ``spaces/nb201.py``),
where calling a Flax module is not allowed.

Every parameterised layer taps its parameters' input for the structured NTK
(``ntkjax.taps``); a module that calls the pure functions itself (NB201's
edge) passes a ``tapper`` along.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from ntkjax import initializers, taps
from ntkjax.taps import Tap, Tapper, conv_output_size, conv_tap, pair, tap

__all__ = [
    "check_images", "conv2d", "batch_norm", "avg_pool_3x3", "avg_pool_2x2", "avg_pool", "max_pool",
    "relu_conv_bn", "BNState", "Conv", "BatchNorm", "Dense", "ReLUConvBN",
]


def check_images(x) -> None:
  """Every network's input check: NHWC RGB images [batch, H, W, 3]."""
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"expected NHWC images [batch, H, W, 3], got shape {x.shape}")


def conv2d(x, kernel, bias=None, stride=1, padding=0, dilation: int = 1, groups: int = 1):
  """NHWC conv with HWIO kernel and symmetric zero padding, like ``nn.Conv2d``.

  ``stride`` and ``padding`` are an int or an (H, W) pair; ``groups=c_in``
  with a [kh, kw, 1, c_out] kernel is a depthwise conv. Ungrouped convs
  differentiate through ``_conv`` (canonical backward convolutions);
  depthwise ones (``c_out == c_in``) run on the CPU as
  ``_shifted_depthwise_conv``, elsewhere as the grouped convolution.
  """
  (ph, pw) = pair(padding)
  geometry = (pair(stride), ((ph, ph), (pw, pw)), (dilation, dilation))
  if groups == 1:
    y = _conv(x, kernel, geometry)
  elif groups == x.shape[-1] == kernel.shape[-1]:
    y = lax.platform_dependent(x, kernel, cpu=functools.partial(_shifted_depthwise_conv, geometry=geometry),
                               default=functools.partial(_plain_conv, geometry=geometry, groups=groups))
  else:
    y = _plain_conv(x, kernel, geometry, groups)
  return y if bias is None else y + bias


def _shifted_depthwise_conv(x, kernel, geometry):
  """A depthwise conv (one [kh, kw] filter per channel) as the sum of the
  kh·kw strided, shifted copies of the padded input, each scaled per
  channel. XLA:CPU runs grouped convolutions and their input gradients
  far slower than this elementwise form (BENCHMARKS.md, "Depthwise
  convolutions on the CPU"). A loop over the taps rather than kh·kw
  unrolled terms, which ran slower and compiled longer (BENCHMARKS.md,
  "Tried and rejected")."""
  (sh, sw), ((ph, _), (pw, _)), (dh, dw) = geometry
  kh, kw = kernel.shape[:2]
  n, h, w, c = x.shape
  ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
  xp = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  window = (n, sh * (ho - 1) + 1, sw * (wo - 1) + 1, c)
  weights = kernel.reshape(kh * kw, c)

  def add_tap(t, y):
    i, j = t // kw, t % kw
    shifted = lax.dynamic_slice(xp, (0, i * dh, j * dw, 0), window)[:, ::sh, ::sw]
    return y + shifted * weights[t]
  return lax.fori_loop(0, kh * kw, add_tap, jnp.zeros((n, ho, wo, c), jnp.result_type(x, kernel)))


def _plain_conv(x, kernel, geometry, groups=1):
  stride, padding, dilation = geometry
  return lax.conv_general_dilated(x, kernel, stride, padding, rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _conv(x, kernel, geometry):
  """An ungrouped NHWC/HWIO conv whose JVP is written so that JAX's
  transposes of it (the backward pass) are NHWC/HWIO convolutions too.

  XLA:CPU rewrites a convolution into that canonical form (its fast Eigen
  path) only in the entry computation; inside ``lax.switch``, ``scan`` or
  ``while`` bodies the autodiff transposes (kernel ``01oi``, input
  ``f01b``) run as naive loops (docs/design.md). Here the
  tangent terms take pre-transposed operands (kernel as [kh, kw, O, I];
  input as [C, H, W, N] with the kernel tangent as [I, kh, kw, O]), whose
  transposes are canonical. Values and derivatives are those of the plain
  conv (tests/test_layers.py)."""
  return _plain_conv(x, kernel, geometry)


def _conv_jvp(geometry, primals, tangents):
  (x, kernel), (dx, dkernel) = primals, tangents
  stride, padding, dilation = geometry
  y = _conv(x, kernel, geometry)
  terms = []
  if not isinstance(dx, SymbolicZero):
    terms.append(lax.conv_general_dilated(dx, jnp.transpose(kernel, (0, 1, 3, 2)), stride, padding,
                                      rhs_dilation=dilation, dimension_numbers=("NHWC", "HWOI", "NHWC")))
  if not isinstance(dkernel, SymbolicZero):
    # x as lhs [C, H, W, N] (batch C, features N), dkernel as rhs [I, kh, kw,
    # O], output [Ho, Wo, N, O]: the transpose for the kernel is then the
    # conv [C, H, W, N] x [Ho, Wo, N, O] -> [C, kh, kw, O].
    numbers = lax.ConvDimensionNumbers((3, 0, 1, 2), (3, 0, 1, 2), (2, 3, 0, 1))
    dk = lax.conv_general_dilated(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dkernel, (2, 0, 1, 3)), stride,
                                  padding, rhs_dilation=dilation, dimension_numbers=numbers)
    terms.append(jnp.transpose(dk, (2, 0, 1, 3)))
  return y, sum(terms[1:], terms[0])


_conv.defjvp(_conv_jvp, symbolic_zeros=True)


class BNState(NamedTuple):
  """BatchNorm arrays. ``scale``/``shift`` are None without affine params and
  ``mean``/``var`` are None without running statistics."""
  scale: Any
  shift: Any
  mean: Any
  var: Any


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _batch_normalise(x, eps):
  """``((x - μ) / sqrt(σ² + eps), μ, σ²)`` over the batch and pixels.

  The JVP is written out (linear in the tangent, with the normalised output
  and 1/σ as coefficients), so its transpose is the textbook fused BN
  backward: autodiff of the forward gives the same values in about twice the
  memory passes, which dominate coupled NTK rows on a CPU."""
  mean = jnp.mean(x, axis=(0, 1, 2))
  var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
  return (x - mean) * lax.rsqrt(var + eps), mean, var


@_batch_normalise.defjvp
def _batch_normalise_jvp(eps, primals, tangents):
  (x,), (dx,) = primals, tangents
  y, mean, var = _batch_normalise(x, eps)
  inv = lax.rsqrt(var + eps)
  d_mean = jnp.mean(dx, axis=(0, 1, 2))
  d_var = 2.0 * jnp.mean((x - mean) * dx, axis=(0, 1, 2))
  dy = inv * (dx - d_mean - y * jnp.mean(y * dx, axis=(0, 1, 2)))
  return (y, mean, var), (dy, d_mean, d_var)


def batch_norm(x, state: BNState, use_batch_stats: bool, *,
               momentum: float = 0.1, eps: float = 1e-5, tapper: Tapper | None = None):
  """PyTorch ``BatchNorm2d`` on NHWC input.

  Returns ``(y, (new_mean, new_var))``; the running statistics are returned
  unchanged when ``use_batch_stats`` is False and as None when not tracked.
  ``tapper(name, y, Tap)`` taps the affine part (params at ``bn/scale``,
  ``bn/bias`` relative to the tapping module).
  """
  if use_batch_stats or state.mean is None:
    y, mean, var = _batch_normalise(x, eps)
    if state.mean is not None:
      n = x.shape[0] * x.shape[1] * x.shape[2]
      unbiased = var * (n / max(n - 1, 1))
      new_stats = ((1 - momentum) * state.mean + momentum * mean,
                   (1 - momentum) * state.var + momentum * unbiased)
    else:
      new_stats = None
  else:
    new_stats = (state.mean, state.var)
    y = (x - state.mean) * lax.rsqrt(state.var + eps)
  if state.scale is not None:
    normalised = y
    y = y * state.scale + state.shift
    if tapper is not None:
      y = tapper("bn_out", y, Tap(normalised, "affine", ("bn", "scale"), ("bn", "bias")))
  return y, new_stats


def _sum_pool(x, window: int, stride: int, padding: int):
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return lax.reduce_window(x, 0.0, lax.add, (1, window, window, 1),
                           (1, stride, stride, 1), pad)


def avg_pool_3x3(x):
  """3x3 stride-1 average pooling, padding 1, ``count_include_pad=False``."""
  return avg_pool(x, 3, 1, 1)


def avg_pool(x, window: int, stride: int = 1, padding: int = 0):
  """``nn.AvgPool2d(window, stride, padding, count_include_pad=False)``."""
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  return _sum_pool(x, window, stride, padding) / _sum_pool(ones, window, stride, padding)


def max_pool(x, window: int, stride: int = 1, padding: int = 0):
  """``nn.MaxPool2d(window, stride, padding)``: padding never wins the max."""
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), pad)


def avg_pool_2x2(x):
  """2x2 stride-2 average pooling without padding (``nn.AvgPool2d(2, 2)``)."""
  return _sum_pool(x, 2, 2, 0) / 4.0


class Conv(nn.Module):
  """``nn.Conv2d`` with PyTorch padding; variables ``kernel``
  [kh, kw, in / groups, out] and optional ``bias``. ``kernel_size``,
  ``stride`` and ``padding`` are an int or an (H, W) pair."""
  c_in: int
  c_out: int
  kernel_size: Any
  stride: Any = 1
  padding: Any = 0
  use_bias: bool = False
  init_scheme: str = "torch_default"
  dilation: int = 1
  groups: int = 1

  def setup(self):
    shape = pair(self.kernel_size) + (self.c_in // self.groups, self.c_out)
    kernel_init, bias_init = initializers.get(self.init_scheme, shape)
    self.kernel = self.param("kernel", kernel_init, shape)
    self.bias = self.param("bias", bias_init, (self.c_out,)) if self.use_bias else None

  def __call__(self, x):
    y = conv2d(x, self.kernel, self.bias, self.stride, self.padding, self.dilation, self.groups)
    return tap(self, "out", y, conv_tap(x, self.kernel.shape, self.stride, self.padding, self.dilation,
                                        self.groups, ("kernel",), ("bias",) if self.use_bias else None))


class BatchNorm(nn.Module):
  """``nn.BatchNorm2d``; params ``scale``/``bias``, stats ``mean``/``var``.

  ``momentum`` is PyTorch's (weight of the new batch); TensorFlow's decay d
  is ``momentum = 1 - d``.
  """
  features: int
  affine: bool = True
  track_running_stats: bool = True
  momentum: float = 0.1
  eps: float = 1e-5

  def setup(self):
    c = self.features
    if self.affine:
      self.scale = self.param("scale", nn.initializers.ones, (c,))
      self.shift = self.param("bias", nn.initializers.zeros, (c,))
    else:
      self.scale = self.shift = None
    if self.track_running_stats:
      self.mean = self.variable("batch_stats", "mean", jnp.zeros, (c,))
      self.var = self.variable("batch_stats", "var", jnp.ones, (c,))
    else:
      self.mean = self.var = None

  def state(self) -> BNState:
    tracked = self.mean is not None
    return BNState(self.scale, self.shift,
                   self.mean.value if tracked else None,
                   self.var.value if tracked else None)

  def update(self, new_stats) -> None:
    """Stores running statistics when the ``batch_stats`` collection is
    mutable; otherwise (e.g. inside an NTK) the update is dropped."""
    if (new_stats is None or self.mean is None or self.is_initializing()
        or not self.is_mutable_collection("batch_stats")):
      return
    self.mean.value, self.var.value = new_stats

  def __call__(self, x, train: bool):
    y, new_stats = batch_norm(x, self.state(), train, momentum=self.momentum, eps=self.eps,
                              tapper=lambda name, out, rec: tap(self, "out", out, rec.replace(
                                  weight=("scale",), bias=("bias",))))
    if train:
      self.update(new_stats)
    return y


class Dense(nn.Module):
  """``nn.Linear``: ``kernel`` [in, out] and ``bias``."""
  c_in: int
  c_out: int
  init_scheme: str = "torch_default"

  @nn.compact
  def __call__(self, x):
    kernel_init, bias_init = initializers.get(self.init_scheme, (self.c_in, self.c_out))
    kernel = self.param("kernel", kernel_init, (self.c_in, self.c_out))
    bias = self.param("bias", bias_init, (self.c_out,))
    return tap(self, "out", x @ kernel + bias, Tap(x, "dense", ("kernel",), ("bias",)))


def relu_conv_bn(x, arrays, stride: int, padding: int, use_batch_stats: bool, tapper: Tapper | None = None):
  """Pure ReLU -> Conv -> BN on ``arrays = ((kernel, bias), BNState)``.

  Returns ``(y, new_running_stats)`` like ``batch_norm``. ``tapper(name,
  y, Tap)`` taps the conv (params ``conv/kernel``, ``conv/bias``) and the
  affine BN (``bn/scale``, ``bn/bias``), paths relative to the caller.
  """
  (kernel, bias), bn_state = arrays
  h = jax.nn.relu(x)
  y = conv2d(h, kernel, bias, stride, padding)
  if tapper is not None:
    y = tapper("conv_out", y, conv_tap(h, kernel.shape, stride, padding, 1, 1, ("conv", "kernel"),
                                   ("conv", "bias") if bias is not None else None))
  return batch_norm(y, bn_state, use_batch_stats, tapper=tapper)


class ReLUConvBN(nn.Module):
  """ReLU -> Conv -> BN, the NB201 ``ReLUConvBN`` op.

  ``relu_conv_bn`` runs the op on explicit arrays (from ``arrays()``), which
  is what ``lax.switch`` branches need; ``__call__`` is the ordinary call.
  """
  c_in: int
  c_out: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  conv_bias: bool = False
  affine: bool = True
  track_running_stats: bool = True
  init_scheme: str = "torch_default"

  def setup(self):
    self.conv = Conv(self.c_in, self.c_out, self.kernel_size, self.stride,
                     self.padding, self.conv_bias, self.init_scheme)
    self.bn = BatchNorm(self.c_out, self.affine, self.track_running_stats)

  def arrays(self):
    return (self.conv.kernel, self.conv.bias), self.bn.state()

  def __call__(self, x, train: bool):
    taps.probe_relu(self, "in", x)
    y, new_stats = relu_conv_bn(x, self.arrays(), self.stride, self.padding, train,
                                tapper=lambda name, out, rec: tap(self, name, out, rec))
    if train:
      self.bn.update(new_stats)
    return y
