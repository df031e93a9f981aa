"""The masked NB101 network against the per-graph one: same logits and NTK
for embedded variables, one compilation for many specs, and fresh inits at
each spec's own fan-ins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import data, ntk, train
from ntkjax.spaces import api, nb101
from ntkjax.spaces import nb101_masked as masked
from tests.helpers import CHAIN, INCEPTION, SKIP

DIRECT = nb101.Spec.create([[0, 1], [0, 0]], ["input", "output"])  # input -> output only
SPECS = (INCEPTION, SKIP, DIRECT)
# stack widths 4 and 8: INCEPTION splits them 2+1+1 and 3+3+2 (the official remainder rule)
KW = dict(stem_channels=4, num_stacks=2, modules_per_stack=1)
X = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))


def _per_graph(spec, train_stats: bool):
  net = nb101.Network(spec, **KW)
  v = jax.jit(net.init)(jax.random.key(1), X[:1])
  if train_stats:  # running statistics away from their initial values
    v = {**v, **jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"])[1])(v, X)}
  return net, v


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_masked_network_computes_each_spec_with_one_compilation(bn):
  net = masked.MaskedNetwork(**KW)
  ntk_fn = ntk.empirical_ntk_fn(net, bn=bn, param_filter="paper_code")
  traces = []

  @jax.jit
  def masked_ntk(v, x, arch):
    traces.append(1)
    return ntk_fn(v, x, arch)

  for spec in SPECS:
    per_graph, v = _per_graph(spec, bn == "eval")
    arch = masked.encode(spec, stem_channels=4, num_stacks=2)
    mv = masked.embed(spec, v, jax.jit(net.init)(jax.random.key(2), X[:1], arch))
    want = jax.jit(lambda v, x: per_graph.apply(v, x, train=bn == "train", mutable=["batch_stats"])[0])(v, X)
    got = jax.jit(lambda v, x, a: net.apply(v, x, a, train=bn == "train", mutable=["batch_stats"])[0])(mv, X, arch)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    k_want = jax.jit(ntk.empirical_ntk_fn(per_graph, bn=bn, param_filter="paper_code"))(v, X)
    k_got = masked_ntk(mv, X, arch)
    assert float(jnp.abs(k_want).max()) > 0
    np.testing.assert_allclose(k_got, k_want, rtol=1e-4, atol=1e-6 * float(jnp.abs(k_want).max()))
  assert len(traces) == 1


def test_fresh_init_uses_each_vertex_s_real_fan_in():
  net = masked.MaskedNetwork(**KW)
  arch = masked.encode(INCEPTION, stem_channels=4, num_stacks=2)
  params = jax.jit(net.init)(jax.random.key(3), X[:1], arch)["params"]
  ch = nb101.vertex_channels(8, 8, INCEPTION.matrix)  # stack 1: 3, 3, 2 feed the output; vertex 3 -> 4
  for v in range(1, 6):
    kind = "conv3x3" if INCEPTION.ops[v] == nb101.OPS[0] else "conv1x1"
    if INCEPTION.ops[v] == "maxpool3x3":
      continue
    kernel = np.array(params["stack1_module0"][f"vertex_{v}_{kind}"]["conv"]["kernel"])
    k = kernel.shape[0]
    active = kernel[:, :, :ch[v], :ch[v]]
    bound = 1 / np.sqrt(k * k * ch[v])  # torch_default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(active).max() <= bound and np.abs(active).max() > 0.5 * bound
    kernel[:, :, :ch[v], :ch[v]] = 0
    assert not kernel.any(), "padding outside the active block must start at zero"


def test_encode_and_embed_errors_name_the_mismatch():
  net = masked.MaskedNetwork(**KW)
  with pytest.raises(ValueError, match="encoded for 128 channels"):
    net.init(jax.random.key(0), X[:1], masked.encode(CHAIN, num_stacks=2))
  with pytest.raises(ValueError, match="3 stacks"):
    net.init(jax.random.key(0), X[:1], masked.encode(CHAIN, stem_channels=4))
  arch = masked.encode(CHAIN, stem_channels=4, num_stacks=2)
  mv = jax.jit(net.init)(jax.random.key(0), X[:1], arch)
  stray = {"params": {"stack0_module0": {"vertex_1": {"conv": {"weight": jnp.ones(3)}}}}}
  with pytest.raises(ValueError, match="vertex_1/conv/weight"):
    masked.embed(CHAIN, stray, mv)


@pytest.mark.slow
def test_masked_space_shares_one_network_and_initialises_per_spec():
  specs = {s.hash: s for s in SPECS}
  space = api.NB101Space(specs, stem_channels=4, num_stacks=2, modules_per_stack=1, masked=True)
  assert space.shares_compilation and not space.shares_variables
  built = []
  pool = api.Instantiator(space, jax.random.key(0), X[:1], {"n": lambda net: built.append(net) or net.apply})
  insts = [pool.get(h, i) for i, h in enumerate(sorted(specs))]
  assert len(built) == 1 and len({i.candidate.cache_key for i in insts}) == 1
  k0 = insts[0].variables["params"]["stem"]["conv"]["kernel"]
  k1 = insts[1].variables["params"]["stem"]["conv"]["kernel"]
  assert not np.allclose(k0, k1)  # fold_in(key, index): an init per spec
  pool.release(insts[0])
  assert pool.get(insts[0].arch, 0).fns is insts[0].fns  # release keeps the shared compilation
  assert api.NB101Space(specs).shares_compilation is False


@pytest.mark.slow
def test_training_the_masked_network_trains_the_spec():
  """An SGD epoch (weight decay, momentum, train-mode BN) moves the embedded
  blocks exactly as it moves the per-graph network, and the padding stays zero."""
  ds = data.load("digits16")
  ds = ds._replace(images=ds.images[:16], labels=ds.labels[:16])
  net = masked.MaskedNetwork(**KW)
  per_graph, v = _per_graph(SKIP, False)
  arch = masked.encode(SKIP, stem_channels=4, num_stacks=2)
  mv = masked.embed(SKIP, v, jax.jit(net.init)(jax.random.key(2), ds.images[:1].astype(np.float32), arch))
  tx = train.sgd(learning_rate=0.1)
  kw = dict(tx=tx, batch_size=8, padding=2)
  want, h_want = train.train(per_graph, v, (), ds, 1, jax.random.key(4), **kw)
  got, h_got = train.train(net, mv, (arch,), ds, 1, jax.random.key(4), **kw)
  assert h_got[0].loss == pytest.approx(h_want[0].loss, rel=1e-5)
  again = masked.embed(SKIP, want, got)  # the trained per-graph blocks in the masked layout
  flat = jax.tree_util.tree_leaves_with_path(got["params"])
  for (path, a), b in zip(flat, jax.tree_util.tree_leaves(again["params"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))


def test_fresh_init_of_a_spec_with_padding_vertices_is_finite():
  # Fewer than 7 vertices: the padding vertices have no real channels (fan-in 0), which drew inf * 0 = NaN.
  net = masked.MaskedNetwork(**KW)
  arch = masked.encode(SKIP, stem_channels=4, num_stacks=2)
  variables = jax.jit(net.init)(jax.random.key(3), X[:1], arch)
  assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(variables))
  assert np.isfinite(np.asarray(net.apply(variables, X, arch))).all()
