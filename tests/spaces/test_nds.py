"""NDS cell spaces: genotypes, strings, sampling, parameter counts against
published figures and NB301's records, and the Flax network."""

import ast
import json

import jax
import numpy as np
import pytest

from ntkjax import ntk
from ntkjax.spaces import api, nds

NB301 = "nasbench301_darts_space/naslib_zc_nasbench301_725.json"


def test_darts_v2_has_the_published_parameter_count():
  # DARTS (Liu et al. 2019) reports 3.3M for CIFAR-10 (C=36, 20 cells); its training
  # log prints "param size = 3.349342MB", counted without the auxiliary head.
  arch = nds.Arch(nds.DARTS_V2, width=36, depth=20)
  assert nds.num_params(arch) == 3_349_342
  # The auxiliary head after cell 13 (576 channels): 73,728 + 256 + 393,216 + 1,536 + 7,690.
  assert nds.num_params(arch, auxiliary=True) == 3_349_342 + 476_426


def test_parameter_counts_of_725_nb301_darts_cells(shared_data):
  cells = json.load(open(shared_data(NB301)))["cifar10"]
  assert len(cells) == 725
  for compact, rec in cells.items():
    arch = nds.from_naslib_compact(ast.literal_eval(compact))
    # NASLib's network (C=32, 8 cells) has no affine BN inside the ops.
    assert nds.num_params(arch, op_affine=False) == round(rec["params"]["score"] * 1e6), compact


@pytest.mark.parametrize("space", sorted(nds.SPACES))
def test_sampled_genotypes_are_valid_and_round_trip(space):
  sp = nds.SPACES[space]
  archs = nds.sample(jax.random.key(0), space, 40, width=8, depth=5)
  assert archs == nds.sample(jax.random.key(0), space, 40, width=8, depth=5)
  assert len({nds.encode(a) for a in archs}) == 40
  ops_seen = set()
  for a in archs:
    g = nds.validate(a.genotype, space)
    assert nds.decode(nds.encode(a), space) == a
    for pairs, concat in ((g.normal, g.normal_concat), (g.reduce, g.reduce_concat)):
      assert len(pairs) == 2 * sp.num_nodes
      ops_seen |= {o for o, _ in pairs}
      if sp.concat == "loose_ends":
        assert concat == nds.loose_ends(pairs)
      else:
        assert concat == tuple(range(2, 2 + sp.num_nodes))
      if sp.distinct_inputs:
        assert all(pairs[k][1] != pairs[k + 1][1] for k in range(0, len(pairs), 2))
  assert ops_seen == set(sp.ops)  # 40 x 20 draws reach every op
  m = nds.mutate(jax.random.key(1), archs[0], space)
  nds.validate(m.genotype, space)
  diff = [(x, y) for x, y in zip(archs[0].genotype.normal + archs[0].genotype.reduce,
                                 m.genotype.normal + m.genotype.reduce) if x != y]
  assert len(diff) == 1 and (diff[0][0][0] == diff[0][1][0]) != (diff[0][0][1] == diff[0][1][1])


def test_input_sampling_is_uniform():
  archs = nds.sample(jax.random.key(3), "enas", 400)
  last = np.array([a.genotype.normal[-1][1] for a in archs])  # node 4 reads states 0..5
  counts = np.bincount(last, minlength=6)
  assert counts.min() > 400 / 6 * 0.6 and counts.max() < 400 / 6 * 1.4


@pytest.mark.parametrize("text, message", [
    ("w16d8|normal=sep_conv_3x3~0", "not an NDS architecture string"),
    ("w16dx|normal=a~0;2|reduce=a~0;2", "bad width/depth"),
    ("w16d8|normal=sep_conv_3x3~0,sep_conv_3x3~1|reduce=max_pool_3x3~0,max_pool_3x3~1;2", "no ';concat'"),
    ("w16d8|normal=conv_9x9~0,sep_conv_3x3~1;2|reduce=max_pool_3x3~0,max_pool_3x3~1;2", "unknown op 'conv_9x9'"),
    ("w16d8|normal=sep_conv_3x3~0,sep_conv_3x3~2;2|reduce=max_pool_3x3~0,max_pool_3x3~1;2",
     r"input 2 is not an earlier state"),
    ("w16d8|normal=sep_conv_3x3~0,sep_conv_3x3~1;3|reduce=max_pool_3x3~0,max_pool_3x3~1;2", r"concat \[3\]"),
])
def test_bad_strings_name_the_problem(text, message):
  with pytest.raises(ValueError, match=message):
    nds.decode(text)


def test_space_checks():
  g = nds.DARTS_V2
  nds.validate(g, "darts")
  with pytest.raises(ValueError, match="normal cell has 4 nodes; this space has 5"):
    nds.validate(g, "enas")
  with pytest.raises(ValueError, match="unknown op 'dil_conv_3x3'"):
    nds.validate(g._replace(normal=g.normal + (("skip_connect", 0), ("skip_connect", 1))), "enas")
  with pytest.raises(ValueError, match="unknown NDS space 'nope'"):
    nds.sample(jax.random.key(0), "nope", 1)


@pytest.mark.slow
def test_network_count_and_shapes_for_every_op():
  # One genotype that uses every op, in normal and reduction cells, at both strides.
  ops = sorted(nds.ALL_OPS - {"none"}) + ["none"]
  pairs = tuple((op, k % 2) for k, op in enumerate(ops))
  g = nds.Genotype(pairs, tuple(range(2, 2 + len(pairs) // 2)), pairs, (2, 3))
  arch = nds.Arch(g, width=4, depth=3)
  net = nds.Network(arch)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  v = jax.jit(net.init)(jax.random.key(1), x)
  n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v["params"]))
  assert n == nds.num_params(arch)
  y, _ = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
  assert y.shape == (2, 10) and np.all(np.isfinite(y))


@pytest.mark.slow
def test_small_network_ntk_compiles_once_per_arch():
  archs = nds.sample(jax.random.key(2), "darts", 2, width=4, depth=3)
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 3))
  traces = []

  def factory(net):
    def f(v, xs):
      traces.append(1)
      return ntk.empirical_ntk_fn(net, bn="eval")(v, xs)
    return f
  space = api.NDSSpace("darts", archs={nds.encode(a): a for a in archs})
  pool = api.Instantiator(space, jax.random.key(0), x[:1], {"ntk": lambda net: jax.jit(factory(net))})
  for arch in (archs[0], archs[1], archs[0]):
    inst = pool.get(nds.encode(arch), 0)
    k = inst.fns["ntk"](inst.variables, x)
    assert k.shape == (3, 3) and np.all(np.isfinite(k)) and np.allclose(k, k.T, rtol=1e-4)
  assert len(traces) == 2


@pytest.mark.slow
@pytest.mark.parametrize("space", sorted(nds.SPACES))
def test_logits_match_the_nni_pytorch_network(space):
  torch = pytest.importorskip("torch")
  pytest.importorskip("nni.nas.hub.pytorch.nasnet")
  from tests import torch_nds
  torch.manual_seed(0)
  for arch in nds.sample(jax.random.key(5), space, 2, width=4, depth=5):
    model = torch_nds.official_network(arch, space)
    with torch.no_grad():  # non-trivial BN affine params and running statistics
      for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
          m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
          m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    net = nds.Network(arch)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
    v = torch_nds.copy_into(net.init(jax.random.key(0), x[:1]), model, arch)
    assert sum(p.numel() for p in model.parameters()) == nds.num_params(arch)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    for train in (False, True):
      model.train(train)
      with torch.no_grad():
        ref = model(xt).numpy()
      ours = jax.jit(lambda v, x: net.apply(v, x, train=train, mutable=["batch_stats"])[0])(v, x)
      np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_width_and_depth_are_sampled_from_nds_ranges():
  archs = nds.sample(jax.random.key(4), "pnas", 60)
  assert {a.width for a in archs} == set(nds.WIDTHS) and {a.depth for a in archs} == set(nds.DEPTHS)
