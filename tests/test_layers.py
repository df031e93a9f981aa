"""ntkjax.layers.conv2d: the custom-JVP conv against lax's own conv."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ntkjax import layers, taps

# (kernel (kh, kw), stride, padding, dilation)
GEOMETRIES = [((3, 3), 2, 1, 1)] + [
    pytest.param(*g, marks=pytest.mark.slow)
    for g in (((3, 3), 1, 1, 1), ((3, 3), 1, 2, 2), ((1, 1), 1, 0, 1), ((1, 1), 2, 0, 1), ((1, 3), (1, 2), (0, 1), 1),
              ((5, 5), 2, 2, 1))]


def _reference(x, kernel, stride, padding, dilation, groups=1):
  s = taps.pair(stride)
  ph, pw = taps.pair(padding)
  return lax.conv_general_dilated(x, kernel, s, ((ph, ph), (pw, pw)), rhs_dilation=(dilation, dilation),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax.Precision.HIGHEST,
                                  feature_group_count=groups)


@pytest.mark.parametrize("kernel_size,stride,padding,dilation", GEOMETRIES)
def test_conv2d_values_and_derivatives_equal_lax_conv(kernel_size, stride, padding, dilation):
  with jax.enable_x64(True):
    kx, kw, kt = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 9, 10, 4), jnp.float64)
    kernel = jax.random.normal(kw, kernel_size + (4, 5), jnp.float64)
    ours = lambda x, k: jnp.sin(layers.conv2d(x, k, None, stride, padding, dilation))
    ref = lambda x, k: jnp.sin(_reference(x, k, stride, padding, dilation))
    np.testing.assert_allclose(ours(x, kernel), ref(x, kernel), rtol=1e-12, atol=1e-12)
    y, vjp_ours = jax.vjp(ours, x, kernel)
    _, vjp_ref = jax.vjp(ref, x, kernel)
    cts = jax.random.normal(kt, (2,) + y.shape, jnp.float64)
    for a, b in zip(jax.vmap(vjp_ours)(cts), jax.vmap(vjp_ref)(cts)):  # reverse mode, batched cotangents
      np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    tangents = (jnp.cos(x), jnp.cos(kernel))
    for args in [tangents, (tangents[0], jnp.zeros_like(kernel)), (jnp.zeros_like(x), tangents[1])]:
      np.testing.assert_allclose(jax.jvp(ours, (x, kernel), args)[1], jax.jvp(ref, (x, kernel), args)[1],
                                 rtol=1e-11, atol=1e-11)
    # Second order (NTK-vector products differentiate the backward pass).
    hvp = lambda f: jax.jvp(lambda k: jax.grad(lambda k: jnp.sum(f(x, k) ** 2))(k), (kernel,), (tangents[1],))[1]
    np.testing.assert_allclose(hvp(ours), hvp(ref), rtol=1e-10, atol=1e-10)


def test_backward_convolutions_inside_switch_are_canonical():
  """XLA:CPU runs a conv as its fast NHWC/HWIO kernel only in that layout; in
  a lax.switch branch it does not rewrite autodiff's transposed convs."""
  kernel = jnp.ones((3, 3, 8, 8)) * 0.1
  x = jnp.ones((4, 8, 8, 8))

  def loss(kernel, x, op):
    conv = lambda h: jax.nn.relu(layers.conv2d(h, kernel, None, 1, 1))
    return jnp.sum(lax.switch(op, [conv, lambda h: h], x) ** 2)

  text = jax.jit(jax.grad(loss, (0, 1))).lower(kernel, x, 0).compile().as_text()
  labels = re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", text)
  assert len(labels) == 3, text  # forward, input and kernel cotangents
  assert set(labels) == {"b01f_01io->b01f"}, labels


@pytest.mark.parametrize("kernel_size,stride,padding,dilation",
                         [((5, 5), 2, 4, 2), ((1, 3), (1, 2), (0, 1), 1)] + [
                             pytest.param(*g, marks=pytest.mark.slow)
                             for g in (((3, 3), 1, 1, 1), ((5, 5), 2, 2, 1), ((3, 3), 1, 2, 2), ((3, 3), 2, 1, 1))])
def test_depthwise_conv2d_equals_the_grouped_convolution(kernel_size, stride, padding, dilation):
  """On the CPU a depthwise conv runs as shifted, scaled copies of its input
  (layers._shifted_depthwise_conv); values and derivatives stay the grouped
  convolution's, odd sizes and strides included."""
  with jax.enable_x64(True):
    kx, kw, kt = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (3, 9, 10, 4), jnp.float64)
    kernel = jax.random.normal(kw, kernel_size + (1, 4), jnp.float64)
    ours = lambda x, k: jnp.sin(layers.conv2d(x, k, None, stride, padding, dilation, groups=4))
    ref = lambda x, k: jnp.sin(_reference(x, k, stride, padding, dilation, groups=4))
    np.testing.assert_allclose(jax.jit(ours)(x, kernel), ref(x, kernel), rtol=1e-12, atol=1e-12)
    y, vjp_ours = jax.vjp(ours, x, kernel)
    _, vjp_ref = jax.vjp(ref, x, kernel)
    cts = jax.random.normal(kt, (2,) + y.shape, jnp.float64)
    for a, b in zip(jax.vmap(vjp_ours)(cts), jax.vmap(vjp_ref)(cts)):
      np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    tangents = (jnp.cos(x), jnp.cos(kernel))
    np.testing.assert_allclose(jax.jvp(ours, (x, kernel), tangents)[1], jax.jvp(ref, (x, kernel), tangents)[1],
                               rtol=1e-11, atol=1e-11)


def test_depthwise_conv2d_on_the_cpu_runs_no_grouped_convolution():
  """XLA:CPU's grouped convolutions (and their input gradients) run 5-60x
  slower than the shifted form (BENCHMARKS.md); a channel multiplier other
  than 1 keeps the convolution."""
  x = jnp.ones((2, 8, 8, 4))

  def compiled_grad(kernel, groups):
    loss = lambda k, x: jnp.sum(layers.conv2d(x, k, None, 1, 1, groups=groups) ** 2)
    return jax.jit(jax.grad(loss, (0, 1))).lower(kernel, x).compile().as_text()

  depthwise = compiled_grad(jnp.ones((3, 3, 1, 4)), 4)
  assert "convolution(" not in depthwise, depthwise
  assert "feature_group_count=2" in compiled_grad(jnp.ones((3, 3, 2, 8)), 2)
