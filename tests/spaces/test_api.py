"""The common space interface over NB201, NB101 and NDS."""


import jax
import numpy as np
import pytest

from ntkjax.spaces import api, nb101, nb201, nds

SPECS = {s.hash: s for s in (
    nb101.Spec.create([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]),
    nb101.Spec.create([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"]),
    nb101.Spec.create([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]),
    nb101.Spec.create([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                      ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]))}


def test_nb201_space_matches_the_module_functions():
  space = api.NB201Space(C=4, N=1)
  archs = space.sample(jax.random.key(0), 5)
  assert archs == [nb201.encode(o) for o in nb201.sample(jax.random.key(0), 5)]
  for a in archs:
    cand = space.candidate(a)
    assert cand.cache_key == "nb201" and np.array_equal(cand.args[0], nb201.decode(a))
    assert space.num_params(a) == space.net.param_count(a) and space.index(a) == nb201.ops_to_index(a)
  assert space.shares_variables


ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


def test_nb201_space_select_and_its_batched_form():
  switch = api.NB201Space(C=4, N=1, select="switch", official_index={ARCH: 7})
  batched = switch.batched()
  assert switch.candidate(ARCH).net.select == "switch" and batched.net.select == "mask"
  assert batched.net.clone(select="switch") == switch.net and batched.benchmark_index(ARCH) == 7
  assert batched.batched() is batched
  with pytest.raises(ValueError, match="unknown select 'where'"):
    api.NB201Space(C=4, N=1, select="where")
  others = (api.NB101Space(SPECS, stem_channels=8, num_stacks=1, modules_per_stack=1), api.NDSSpace("pnas"))
  assert all(s.batched() is s for s in others)


@pytest.mark.slow
def test_nb201_switch_and_mask_spaces_share_init_and_outputs():
  switch = api.NB201Space(C=4, N=1, select="switch")
  batched = switch.batched()
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  ops = switch.candidate(ARCH).args
  v = jax.jit(batched.net.init)(jax.random.key(0), x, *ops)  # one set of variables serves both
  same = jax.tree.map(np.array_equal, jax.jit(switch.net.init)(jax.random.key(0), x, *ops), v)
  assert all(jax.tree_util.tree_leaves(same))  # and both initialise it alike (the studies' shared init)
  apply = lambda net: jax.jit(lambda v, x, o: net.apply(v, x, o))(v, x, *ops)
  np.testing.assert_allclose(apply(switch.net), apply(batched.net), rtol=1e-5, atol=1e-6)


def test_nb101_space_over_a_universe():
  space = api.NB101Space(SPECS, stem_channels=8, num_stacks=1, modules_per_stack=1)
  drawn = space.sample(jax.random.key(1), 4)
  assert sorted(drawn) == sorted(SPECS) and not space.shares_variables
  h = next(iter(SPECS))  # the conv3x3 chain: one op or one edge from two others
  assert space.num_params(h) == nb101.num_params(SPECS[h], stem_channels=8, num_stacks=1, modules_per_stack=1)
  assert space.candidate(h).net.spec is SPECS[h] and space.index(h) == sorted(SPECS).index(h)
  children = {space.mutate(jax.random.key(k), h) for k in range(12)}
  # the nearest specs: the conv1x1 chain (one op) and the chain with a skip edge (one edge)
  chain, op_change, edge_change, _ = SPECS
  assert h == chain and children == {op_change, edge_change}
  with pytest.raises(ValueError, match="not a graph hash of this NB101 universe"):
    space.candidate("0" * 32)
  with pytest.raises(ValueError, match="asked for 9 architectures from a universe of 4"):
    space.sample(jax.random.key(0), 9)


def test_nds_space_whole_space_and_universe():
  space = api.NDSSpace("amoeba", width=8, depth=5)
  archs = space.sample(jax.random.key(0), 3)
  assert [nds.decode(a, "amoeba").width for a in archs] == [8, 8, 8] and space.name == "nds_amoeba"
  assert space.index(archs[0]) == api.NDSSpace("amoeba").index(archs[0])  # stable
  child = space.mutate(jax.random.key(1), archs[0])
  nds.decode(child, "amoeba")
  assert space.num_params(archs[0]) == nds.num_params(nds.decode(archs[0]))
  universe = {nds.encode(a): a for a in nds.sample(jax.random.key(3), "darts", 6)}
  over = api.NDSSpace("darts", archs=universe)
  assert set(over.sample(jax.random.key(0), 6)) == set(universe)
  parent = nds.sample(jax.random.key(4), "darts", 1)[0]
  near = nds.mutate(jax.random.key(5), parent, "darts")
  family = {nds.encode(a): a for a in [parent, near, *nds.sample(jax.random.key(6), "darts", 4)]}
  within = api.NDSSpace("darts", archs=family)  # a mutation stays in the universe: the nearest arch
  assert {within.mutate(jax.random.key(k), nds.encode(parent)) for k in range(4)} == {nds.encode(near)}
  with pytest.raises(ValueError, match="normal cell has 5 nodes; this space has 4"):
    api.NDSSpace("darts").validate(archs[0])


def test_nb101_mutation_within_a_benchmark_sample(shared_data):
  from ntkjax import ground_truth
  path = shared_data("nasbench101/nb101_nasbench_vis_1k.json")
  specs = ground_truth.read_nb101_json(path, split="valid", epochs=108).universe
  space = api.NB101Space(specs)
  for k, h in enumerate(space.universe[:20]):  # 1,000 of 423k specs: random single edits miss them
    child = space.mutate(jax.random.key(k), h)
    assert child in specs and child != h


@pytest.mark.slow
def test_instantiator_shares_nb201_and_releases_per_graph_networks():
  import jax.numpy as jnp
  built = []
  factories = {"net": lambda net: built.append(net) or net}
  x1 = jnp.zeros((1, 8, 8, 3))
  shared = api.Instantiator(api.NB201Space(C=4, N=1), jax.random.key(0), x1, factories)
  a, b = shared.space.sample(jax.random.key(1), 2)
  ia, ib = shared.get(a, 0), shared.get(b, 1)
  assert len(built) == 1 and ia.variables is ib.variables and ia.fns["net"] is shared.space.net
  assert np.array_equal(ib.args[0], nb201.decode(b))
  own = api.Instantiator(api.NDSSpace("enas", width=4, depth=3), jax.random.key(0), x1, factories,
                         init_per_arch=True)
  h = own.space.sample(jax.random.key(2), 1)[0]
  built.clear()
  i3, again = own.get(h, 3), own.get(h, 3)
  assert len(built) == 1  # one network until released
  same = jax.tree.map(lambda p, q: bool(np.array_equal(p, q)), i3.variables, again.variables)
  assert all(jax.tree.leaves(same))  # fold_in(key, index): the same index, the same init
  other = own.get(h, 4)
  assert not all(jax.tree.leaves(jax.tree.map(lambda p, q: bool(np.array_equal(p, q)),
                                              i3.variables, other.variables)))
  own.release(i3)
  own.get(h, 3)
  assert len(built) == 2  # rebuilt after release
