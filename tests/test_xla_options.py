"""The engine's XLA compiler options: applied, harmless, and optional."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ntkjax import layers, xla_options

pytestmark = pytest.mark.optimized  # compiled HLO, memory or speed: as users compile

cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA:CPU's")


def _conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _computations(hlo: str) -> dict[str, str]:
  """Computation name -> body in an HLO module's text."""
  out, name, body = {}, None, []
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY )?%(\S+) ", line)
    if head and line.rstrip().endswith("{"):
      name, body = head.group(1), []
    elif line.startswith("}") and name:
      out[name], name = "\n".join(body), None
    elif name:
      body.append(line)
  return out


def _ynn_convolutions(hlo: str) -> list[str]:
  """The YNNPACK fusions that hold a convolution."""
  comps = _computations(hlo)
  return [m.group(1) for m in re.finditer(r"%(\S+) = [^\n]*fusion\([^\n]*kind=kCustom, calls=%([\w.\-]+)", hlo)
          if "ynn" in m.group(0) and "convolution(" in comps.get(m.group(2), "")]


@cpu_only
def test_cpu_convolutions_leave_ynnpack():
  options = xla_options.compiler_options()
  if options is None:
    pytest.skip("this jaxlib rejects the options; the engine compiles with XLA's defaults")
  x, w = jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))
  default = jax.jit(_conv).lower(x, w).compile().as_text()
  engine = xla_options.jit(_conv).lower(x, w).compile().as_text()
  if not _ynn_convolutions(default):
    pytest.skip("this jaxlib does not send convolutions to YNNPACK by default")
  assert _ynn_convolutions(engine) == []


def test_engine_jit_values_match_plain_jit():
  """Same convolutions forward and backward either way, up to float32
  rounding: the options pick kernels, not semantics. The shapes are ones
  XLA:CPU sends to YNNPACK by default (``test_cpu_convolutions_leave_ynnpack``)."""
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (8, 16, 16, 32))
  kernels = [jax.random.normal(k, (3, 3, 32, 32)) / 17 for k in keys[1:]]

  def loss(kernels, x):
    for w in kernels:
      x = jax.nn.relu(layers.conv2d(x, w, padding=1))
    return (x ** 2).mean()

  fn = jax.value_and_grad(loss, argnums=(0, 1))
  (want_v, want_g), (got_v, got_g) = jax.jit(fn)(kernels, x), xla_options.jit(fn)(kernels, x)
  np.testing.assert_allclose(got_v, want_v, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(want_g), jax.tree.leaves(got_g)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(jnp.abs(a).max()))


def test_rejected_options_fall_back_to_defaults(monkeypatch):
  monkeypatch.setitem(xla_options._BY_BACKEND, "cpu", {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  xla_options._accepted.cache_clear()
  try:
    assert xla_options.compiler_options("cpu") is None
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    np.testing.assert_allclose(xla_options.jit(_conv)(x, w), _conv(x, w), rtol=1e-6)
  finally:
    xla_options._accepted.cache_clear()
  assert xla_options.compiler_options("gpu") is None  # no options of its own there: XLA's defaults
  explicit = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
  if jax.default_backend() == "cpu":  # a caller's own options win
    jitted = xla_options.jit(_conv, compiler_options=explicit)
    np.testing.assert_allclose(jitted(x, w), _conv(x, w), rtol=1e-6)


def test_optimized_tests_compile_with_xla_s_full_optimisation():
  # The marker's fixture (tests/conftest.py) lifts the suite's -O0 for tests of HLO, memory or speed.
  assert jax.config.read("jax_disable_most_optimizations") is False
