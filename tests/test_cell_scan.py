"""NB201 with ``scan_cells``: each stage's cells as one scan computes what the
unrolled network computes (logits, running statistics, the structured
NTK's taps and kernels) with the same variable tree; the proxies through
the scan: tests/test_proxies.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from ntkjax import cell_scan, ntk
from ntkjax.spaces import nb201
from ntkjax.taps import PERTURBATIONS, TAPS

from .helpers import MIXED, random_variables


def _setup(variant, select="switch", n=4):
  net = nb201.Network(C=4, N=2, variant=variant, select=select)
  x = jax.random.normal(jax.random.key(1), (n, 8, 8, 3))
  ops = jnp.asarray(nb201.decode(MIXED))
  return net, net.clone(scan_cells=True), random_variables(net, x, ops), x, ops


def _paths(tree):
  return sorted("/".join(map(str, k)) for k in traverse_util.flatten_dict(tree, keep_empty_nodes=True))


def test_scan_cells_keeps_the_variables_and_computes_the_unrolled_network():
  net, scan, v, x, ops = _setup("paper_code")
  assert _paths(jax.eval_shape(scan.init, jax.random.key(0), x, ops)) == _paths(v)  # init stays unrolled
  want, want_state = jax.jit(lambda v, x: net.apply(v, x, ops, train=True, mutable=["batch_stats"]))(v, x)
  got, got_state = jax.jit(lambda v, x: scan.apply(v, x, ops, train=True, mutable=["batch_stats"]))(v, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert _paths(got_state) == _paths(want_state)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got_state, want_state)
  # The structured NTK's collections come back under each cell's own name (kernels: the slow tests).
  shapes = lambda m: jax.eval_shape(lambda: m.apply(v, x, ops, train=True, mutable=[TAPS, PERTURBATIONS]))[1]
  assert _paths(shapes(scan)) == _paths(shapes(net))
  assert any(p.startswith(f"{TAPS}/cell_1_1/") for p in _paths(shapes(scan)))


@pytest.mark.slow
def test_scan_cells_kernels_in_float64():
  """A coupled kernel (paper_code's eval BN uses batch statistics) through
  the switch's taps, in both implementations (minutes of compilation)."""
  net, scan, v, x, ops = _setup("paper_code", "switch")
  with jax.enable_x64(True):
    v64, x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), v), jnp.asarray(np.asarray(x), jnp.float64)
    for impl in ("structured", "jacobian_contraction"):
      want = jax.jit(ntk.empirical_ntk_fn(net, bn="eval", implementation=impl))(v64, x64, ops)
      got = jax.jit(ntk.empirical_ntk_fn(scan, bn="eval", implementation=impl))(v64, x64, ops)
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * float(jnp.abs(want).max()))


def test_a_collection_missing_for_some_cells_is_named():
  class Two(nn.Module):
    @nn.compact
    def __call__(self, x):
      if self.is_initializing():
        return nn.Dense(3, name="a")(nn.Dense(3, name="b")(x))
      return cell_scan.apply(self, nn.Dense(3, parent=None), ["a", "b"], x)

  m = Two()
  v = m.init(jax.random.key(0), jnp.ones((2, 3)))
  np.testing.assert_allclose(m.apply(v, jnp.ones((2, 3))),
                             v["params"]["b"]["bias"] + (v["params"]["a"]["bias"] + jnp.ones((2, 3))
                                                         @ v["params"]["a"]["kernel"]) @ v["params"]["b"]["kernel"],
                             rtol=1e-5)
  broken = {"params": {**v["params"], "extra": {}}, "batch_stats": {"a": {"m": jnp.zeros(3)}}}
  with pytest.raises(ValueError, match="'batch_stats' holds variables for 1 of the cells"):
    m.apply(broken, jnp.ones((2, 3)))
