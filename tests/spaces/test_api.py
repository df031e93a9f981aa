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


def test_nb101_space_over_a_universe():
  space = api.NB101Space(SPECS, stem_channels=8, num_stacks=1, modules_per_stack=1)
  drawn = space.sample(jax.random.key(1), 4)
  assert sorted(drawn) == sorted(SPECS) and not space.shares_variables
  h = next(iter(SPECS))  # the conv3x3 chain: one op or one edge from two others
  assert space.num_params(h) == nb101.num_params(SPECS[h], stem_channels=8, num_stacks=1, modules_per_stack=1)
  assert space.candidate(h).net.spec is SPECS[h] and space.index(h) == sorted(SPECS).index(h)
  child = space.mutate(jax.random.key(2), h)
  assert child in SPECS and child != h
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
  with pytest.raises(ValueError, match="normal cell has 5 nodes; this space has 4"):
    api.NDSSpace("darts").validate(archs[0])
