"""NAS-Bench-101 specs, hashes and parameter counts against the benchmark's
own records, and the Flax network."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import ntk
from ntkjax.spaces import api, nb101
from tests.helpers import CHAIN, INCEPTION, SKIP

VIS_1K = "nasbench101/nb101_nasbench_vis_1k.json"

def _vis_specs(path):
  v = json.load(open(path))
  for a, o, key, p in zip(v["adjacency"], v["operations"], v["key"], v["trainable_parameters"]):
    a, o = np.array(a), np.array(o)
    keep = o != -3  # padding vertices of graphs with fewer than 7 vertices
    yield nb101.Spec.create(a[np.ix_(keep, keep)], o[keep].tolist()), key, p


def test_inception_spec_has_the_official_parameter_count():
  assert nb101.num_params(INCEPTION) == 2694282


def test_hash_and_parameter_count_of_1000_benchmark_specs(shared_data):
  n = 0
  for spec, key, params in _vis_specs(shared_data(VIS_1K)):
    assert spec.hash == key
    assert nb101.num_params(spec) == params, key
    ch = nb101.vertex_channels(128, 128, spec.matrix)
    m = spec.matrix
    if spec.num_vertices > 2:  # the official sanity checks
      assert sum(ch[v] for v in range(1, len(m) - 1) if m[v, -1]) == 128
    for s, d in zip(*np.nonzero(m[1:-1, 1:-1])):
      assert ch[s + 1] >= ch[d + 1]
    n += 1
  assert n == 1000


def test_naslib_fixture_specs(shared_data):
  for key, e in json.load(open(shared_data("nasbench101/nb101_naslib_test_fixture_30.json"))).items():
    spec = nb101.Spec.create(e["module_adjacency"], e["module_operations"])
    assert spec.hash == key and nb101.num_params(spec) == e["trainable_parameters"]


def test_pruning_and_hash_invariance():
  # vertex 2 feeds nothing: pruned, and the hash equals the spec without it
  full = nb101.Spec.create([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
                           ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"])
  small = nb101.Spec.create([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
  assert full.ops == small.ops and np.array_equal(full.matrix, small.matrix)
  assert full.hash == small.hash
  # relabelling isomorphic vertices keeps the hash; changing an op does not
  a = nb101.Spec.create([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                        ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
  b = nb101.Spec.create([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                        ["input", "maxpool3x3", "conv3x3-bn-relu", "output"])
  c = nb101.Spec.create([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                        ["input", "maxpool3x3", "conv1x1-bn-relu", "output"])
  assert a.hash == b.hash != c.hash


@pytest.mark.parametrize("matrix,ops,message", [
    ([[0, 1], [1, 0]], ["input", "output"], "not upper triangular: edge 1->0"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"], "not reachable"),
    ([[0, 1], [0, 0]], ["input", "conv5x5", "output"], "3 ops for 2 vertices"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5-bn-relu", "output"], "unknown op 'conv5x5-bn-relu'"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["conv1x1-bn-relu", "maxpool3x3", "output"], "first op must be 'input'"),
    ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
    (np.triu(np.ones((8, 8), int), 1), ["input"] + ["maxpool3x3"] * 6 + ["output"], "8 vertices"),
    (np.triu(np.ones((7, 7), int), 1), ["input"] + ["maxpool3x3"] * 5 + ["output"], "21 edges"),
])
def test_invalid_specs_are_named(matrix, ops, message):
  with pytest.raises(ValueError, match=message):
    nb101.Spec.create(matrix, ops)


@pytest.mark.parametrize("spec", [INCEPTION, CHAIN, SKIP], ids=["inception", "chain", "skip"])
def test_network_parameters_equal_the_count(spec):
  net = nb101.Network(spec)
  shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert sum(np.prod(s.shape) for s in jax.tree.leaves(shapes["params"])) == nb101.num_params(spec)


@pytest.mark.slow
def test_small_network_runs_and_compiles_once_per_spec():
  kw = dict(stem_channels=8, num_stacks=2, modules_per_stack=1)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  traces = []

  def factory(net):
    def f(v, xs):
      traces.append(1)
      return ntk.empirical_ntk_fn(net, bn="train")(v, xs)
    return f
  space = api.NB101Space({s.hash: s for s in (SKIP, INCEPTION)}, **kw)
  pool = api.Instantiator(space, jax.random.key(0), x[:1], {"ntk": lambda net: jax.jit(factory(net))})
  for spec in (SKIP, INCEPTION, SKIP):
    inst = pool.get(spec.hash, 0)
    assert inst.candidate.net.apply(inst.variables, x).shape == (4, 10)
    k = inst.fns["ntk"](inst.variables, x)
    assert k.shape == (4, 4) and np.all(np.isfinite(k)) and np.allclose(k, k.T, rtol=1e-4)
  assert len(traces) == 2  # SKIP scored twice, compiled once


def test_naslib_tuples_prune_to_specs_and_bad_ones_are_named():
  # 0 -> 1 (conv3x3) -> 6 (output); vertex 2 (maxpool) and 3..5 (conv1x1) feed nothing: pruned.
  m = np.zeros((7, 7), int)
  m[0, 1] = m[1, 6] = m[0, 2] = m[0, 3] = m[3, 4] = m[4, 5] = 1
  m[0, 4] = m[0, 5] = m[1, 2] = m[1, 3] = m[1, 4] = 1  # 11 edges before pruning
  key = str(tuple(m.ravel().tolist()) + (0, 2, 4, 3, 3, 3, 1))
  spec = nb101.from_naslib(key)
  assert spec.ops == ("input", "conv3x3-bn-relu", "output")
  assert spec.matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
  with pytest.raises(ValueError, match=r"not a NASLib NB101 tuple: '\(1, 2\)'"):
    nb101.from_naslib("(1, 2)")
  with pytest.raises(ValueError, match="op codes in 0..4"):
    nb101.from_naslib(key.replace(", 1)", ", 7)"))
  m[1, 4] = 0  # the same pruned graph from another unpruned one
  again = str(tuple(m.ravel().tolist()) + (0, 2, 4, 3, 3, 3, 1))
  assert nb101.from_naslib(again).hash == spec.hash
  records = {key: {"params": nb101.num_params(spec) / 1e6}, again: {"params": nb101.num_params(spec) / 1e6}}
  kept = nb101.naslib_benchmark_records(records)
  assert list(kept) == [spec.hash] and kept[spec.hash][1] is records[key]
  assert nb101.naslib_benchmark_records({key: {"params": 1.0}}) == {}  # another network: dropped
