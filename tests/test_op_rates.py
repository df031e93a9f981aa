"""benchmarks.op_rates: every library computes the same convolutions,
gradients and BN/ReLU backward, and the rates rest on the right FLOP
counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import op_rates

pytestmark = pytest.mark.optimized  # compiled HLO, memory or speed: as users compile


def test_conv_flops_match_compiled_cost_analysis():
  # XLA's count skips taps on 'SAME' padding; the benchmark counts them (the
  # libraries compute them), so compare on the padded input, 'VALID'.
  x, w = jnp.ones((2, 10, 10, 4)), jnp.ones((3, 3, 4, 6))
  fwd = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                                          dimension_numbers=("NHWC", "HWIO", "NHWC")))
  analysed = fwd.lower(x, w).compile().cost_analysis()
  analysed = analysed[0] if isinstance(analysed, list) else analysed
  assert op_rates.conv_flops(2, 8, 4, 6, 3) == 2 * 2 * 8 * 8 * 6 * 9 * 4 == analysed["flops"]


def test_jax_gradients_match_finite_differences():
  rng = np.random.default_rng(1)
  x, w, dy = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((1, 5, 5, 2), (3, 3, 2, 3), (1, 5, 5, 3)))
  fns = op_rates.jax_ops(jax.jit)
  # <dy, conv(x, w)> is linear in each argument, so its gradients are exact differences.
  pairing = lambda x_, w_: float(jnp.vdot(dy, fns["forward"](x_, w_, dy)))
  e = jnp.zeros_like(x).at[0, 2, 3, 1].set(1.0)
  assert fns["input_grad"](x, w, dy)[0, 2, 3, 1] == pytest.approx(pairing(x + e, w) - pairing(x, w), rel=1e-3)
  e = jnp.zeros_like(w).at[1, 0, 1, 2].set(1.0)
  assert fns["weight_grad"](x, w, dy)[1, 0, 1, 2] == pytest.approx(pairing(x, w + e) - pairing(x, w), rel=1e-3)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares with PyTorch on the CPU")
def test_measure_agrees_with_pytorch_in_both_layouts():
  pytest.importorskip("torch")
  rows = op_rates.measure(2, stages=((6, 3),), kernels=(3, 1), repeats=1)
  assert [(r["k"], r["op"]) for r in rows] == [(k, op) for k in (3, 1) for op in op_rates.OPS]
  for r in rows:
    assert set(r["seconds"]) == {"engine", "xla_default", "torch_nchw", "torch_nhwc"}
    assert r["max_rel_diff"] < 1e-5, r
    assert r["gflop"] == op_rates.conv_flops(2, 6, 3, 3, r["k"]) / 1e9
    assert all(r["gflop_per_s"][name] == pytest.approx(r["gflop"] / t) for name, t in r["seconds"].items())


def test_bn_relu_backward_matches_an_explicit_jacobian():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((3, 2, 2, 2)), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  g = jnp.asarray(rng.standard_normal((2,) + x.shape), x.dtype)

  def forward(x_):  # BN over (n, H, W) per channel, written out, then ReLU
    mean = x_.mean((0, 1, 2))
    return jax.nn.relu((x_ - mean) / jnp.sqrt(((x_ - mean) ** 2).mean((0, 1, 2)) + 1e-5))
  jac = jax.jacrev(forward)(x).reshape(x.size, x.size)
  expected = np.stack([np.asarray(gi).reshape(-1) @ np.asarray(jac) for gi in g]).reshape(g.shape)
  np.testing.assert_allclose(op_rates.bn_relu_backward(x, g), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares with PyTorch on the CPU")
def test_measure_bn_agrees_with_pytorch():
  pytest.importorskip("torch")
  rows = op_rates.measure_bn(4, stages=((4, 3), (2, 5)), chunks=(1, 3), repeats=1)
  assert [(r["hw"], r["c"], r["rows_per_call"]) for r in rows] == [(4, 3, 1), (4, 3, 3), (2, 5, 1), (2, 5, 3)]
  for r in rows:
    assert r["max_rel_diff"] < 1e-5, r
    assert r["jax_ms_per_row"] > 0 and r["torch_ms_per_row"] > 0
