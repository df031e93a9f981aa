"""The NDS cells-as-data network against the per-genotype network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import ntk
from ntkjax.spaces import api, nds, nds_switch

X = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))


def _zeros_like_init(net, codes):
  shapes = jax.eval_shape(net.init, jax.random.key(0), X, codes)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def test_codes_and_refusals_name_the_problem():
  arch = nds.Arch(nds.DARTS_V2, 4, 3)
  codes = nds_switch.encode(arch, "darts")
  assert codes.shape == (2, 8, 2) and codes.dtype == np.int32
  ops = nds.SPACES["darts"].ops
  assert [(ops[o], i) for o, i in codes[1]] == list(nds.DARTS_V2.reduce)
  with pytest.raises(ValueError, match="'enas' concatenates its loose ends"):
    nds_switch.encode(nds.sample(jax.random.key(0), "enas", 1, width=4, depth=3)[0], "enas")
  with pytest.raises(ValueError, match="'nasnet' concatenates its loose ends"):
    api.NDSSpace("nasnet", masked=True)
  net = nds_switch.SwitchNetwork("darts", 4, 3)
  with pytest.raises(ValueError, match=r"codes of shape \(2, 4, 2\)"):
    jax.eval_shape(net.init, jax.random.key(0), X, codes[:, :4])
  # The structured NTK cannot see inside the switch: it says so, and 'auto' forms J by autodiff.
  variables = _zeros_like_init(net, codes)
  with pytest.raises(ValueError, match="sows no structured NTK taps"):
    jax.eval_shape(ntk.empirical_ntk_fn(net, bn="eval", implementation="structured"), variables, X, codes)


def test_space_builds_one_network_per_size():
  archs = nds.sample(jax.random.key(2), "darts", 2, width=4, depth=3)
  space = api.NDSSpace("darts", archs={nds.encode(a): a for a in archs}, masked=True)
  cands = [space.candidate(nds.encode(a)) for a in archs]
  assert space.shares_compilation and cands[0].cache_key == cands[1].cache_key
  assert isinstance(cands[0].net, nds_switch.SwitchNetwork)
  np.testing.assert_array_equal(cands[1].args[0], nds_switch.encode(archs[1], "darts"))
  assert space.num_params(nds.encode(archs[0])) == nds.num_params(archs[0])


def _random_like(tree, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), tree)


@pytest.mark.slow
def test_one_compilation_gives_each_genotype_networks_outputs_and_jacobian():
  # One compilation serves two genotypes. With the genotype network's weights copied in, the logits
  # and the running statistics are that network's, and so is the Jacobian of the batch's logits (train
  # BN: samples coupled) along a random tangent of those weights, whatever the tangent of the ops the
  # genotype does not select: J equals the genotype network's J with zero columns added, so the NTK
  # J J^T (empirical_ntk_fn, tests/test_ntk.py) is that network's. A random tangent tells two
  # different Jacobians apart with probability one; it compiles a forward pass where Θ compiles J.
  net = nds_switch.SwitchNetwork("darts", 4, 3)
  archs = nds.sample(jax.random.key(3), "darts", 2, width=4, depth=3)
  like = _zeros_like_init(net, nds_switch.encode(archs[0], "darts"))
  unselected = _random_like(like["params"], 7)
  traces = []

  def directional(apply, v, tangent, *args):
    f = lambda p: apply({**v, "params": p}, X, *args, train=True, mutable=["batch_stats"])
    (y, stats), (dy, _) = jax.jvp(f, (v["params"],), (tangent,))
    return y, stats, dy

  @jax.jit
  def switch(v, tangent, codes):
    traces.append(1)
    return directional(net.apply, v, tangent, codes)
  for i, arch in enumerate(archs):
    ref_net = nds.Network(arch)
    v = jax.jit(ref_net.init)(jax.random.key(0), X)
    tangent = _random_like(v["params"], i)
    y_ref, stats_ref, dy_ref = jax.jit(lambda v, t: directional(ref_net.apply, v, t))(v, tangent)
    ours = nds_switch.from_network_variables(arch, v, like)
    placed_tangent = nds_switch.from_network_variables(arch, {"params": tangent}, {"params": unselected})
    y, stats, dy = switch(ours, placed_tangent["params"], nds_switch.encode(arch, "darts"))
    # float32 roundoff of two compiled graphs: 1e-5 of the largest value; a wrong op or input is O(0.1).
    for a, b in ((y, y_ref), (dy, dy_ref)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    placed = nds_switch.from_network_variables(arch, stats_ref, stats)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(placed)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
  assert len(traces) == 1


@pytest.mark.slow
def test_pnas_logits_equal_the_genotype_network():
  net = nds_switch.SwitchNetwork("pnas", 4, 3)
  arch = nds.sample(jax.random.key(4), "pnas", 1, width=4, depth=3)[0]
  codes = nds_switch.encode(arch, "pnas")
  ref_net = nds.Network(arch)
  v = jax.jit(ref_net.init)(jax.random.key(0), X)
  ours = nds_switch.from_network_variables(arch, v, _zeros_like_init(net, codes))
  y = jax.jit(lambda v, x, c: net.apply(v, x, c))(ours, X, codes)
  np.testing.assert_allclose(y, jax.jit(ref_net.apply)(v, X), rtol=1e-5, atol=1e-6)
