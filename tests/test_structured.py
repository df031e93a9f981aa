"""The structured NTK (per-layer Jacobians from taps) against the Jacobian
contraction and the explicit float64 Jacobian, on every space."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import layers, ntk, structured
from ntkjax.spaces import nb101, nb201, nds
from ntkjax.spaces import nb101_masked as masked
from tests.helpers import ARCHS, INCEPTION, MIXED, TinyBNNet, explicit_ntk, nb201_setup, tiny_net


class TappedTiny(nn.Module):
  """TinyBNNet from ntkjax.layers (tapped): grouped strided conv with bias,
  affine BN, dense."""

  def couples_samples(self, train):
    return train

  @nn.compact
  def __call__(self, x, train=False):
    x = layers.Conv(2, 4, 3, stride=2, padding=1, groups=2, use_bias=True)(x)
    x = layers.BatchNorm(4)(x, train)
    x = layers.Conv(4, 3, 1)(jax.nn.relu(x))
    return layers.Dense(3, 3)(jax.nn.relu(x).mean(axis=(1, 2)))


def _tapped():
  return tiny_net(TappedTiny())


def _f64(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _pair64(net, v, x, args, **kw):
  """(structured, jacobian_contraction) kernels in float64."""
  with jax.enable_x64(True):
    v64, x64 = _f64(v), jnp.asarray(np.asarray(x), jnp.float64)
    out = []
    for impl in ("structured", "jacobian_contraction"):
      fn = ntk.empirical_ntk_fn(net, implementation=impl, **kw)
      out.append(np.asarray(jax.jit(lambda v_, x_, a_: fn(v_, x_, *args[:len(args) - len(a_)], *a_))(
          v64, x64, tuple(a for a in args if not isinstance(a, str)))))
    return out


def _close(got, want, rtol=1e-10):
  assert np.abs(want).max() > 0
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("bn", ["eval", "train"])
@pytest.mark.parametrize("reduction", ntk.REDUCTIONS)
def test_matches_explicit_float64_jacobian(bn, reduction):
  net, v, x = _tapped()
  want = explicit_ntk(net, v, x, bn, reduction)
  for chunk in (None, 2):
    with jax.enable_x64(True):
      fn = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction=reduction, implementation="structured",
                                        chunk_size=chunk))
      _close(np.asarray(fn(_f64(v), jnp.asarray(x, jnp.float64))), want)


class StridedDilated(nn.Module):
  """Plain (groups = 1) convs, strided and dilated, with a bias: the
  per-sample conv gradients each platform's formulation computes."""

  def couples_samples(self, train):
    return train

  @nn.compact
  def __call__(self, x, train=False):
    x = layers.Conv(2, 3, 3, stride=2, padding=1, use_bias=True)(x)  # 7x7 -> 4x4: an odd leftover row
    x = layers.Conv(3, 4, 3, padding=2, dilation=2)(jax.nn.relu(x))
    x = layers.Conv(4, 3, (3, 1), stride=(1, 2), padding=(1, 0))(jax.nn.relu(x))
    return layers.Dense(3, 3)(jax.nn.relu(x).mean(axis=(1, 2)))


def _strided_dilated():
  net = StridedDilated()
  x = jax.random.normal(jax.random.key(1), (5, 7, 7, 2))
  return net, jax.jit(net.init)(jax.random.key(0), x), x


@pytest.mark.parametrize("reduction", [pytest.param("sum_logits", marks=pytest.mark.slow), "full"])
@pytest.mark.parametrize("mapped_on", [("cpu",), ()], ids=["mapped", "im2col"])
def test_per_sample_conv_gradients_match_the_explicit_jacobian(reduction, mapped_on, monkeypatch):
  monkeypatch.setattr(structured, "MAPPED_CONV_PLATFORMS", mapped_on)  # () runs the other platforms' GEMM here
  net, v, x = _strided_dilated()
  want = explicit_ntk(net, v, x, "eval", reduction)
  with jax.enable_x64(True):
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn="eval", reduction=reduction, implementation="structured"))
    _close(np.asarray(fn(_f64(v), jnp.asarray(x, jnp.float64))), want)


@pytest.mark.parametrize("platform,mapped", [("cpu", True), ("cuda", False), ("tpu", False)])
def test_each_platform_lowers_its_own_per_sample_conv_grads(platform, mapped):
  net, v, x = _strided_dilated()
  fn = jax.jit(ntk.empirical_ntk_fn(net, bn="eval", implementation="structured"))
  text = jax.export.export(fn, platforms=[platform])(v, x).mlir_module()
  assert ("stablehlo.while" in text) == mapped  # one sample at a time: the lax.map


def test_param_filters_select_the_same_blocks():
  net, v, x = _tapped()
  for pf in ("paper_code", lambda path: path[-1] == "bias"):
    for bn in ("eval", "train"):
      got, want = _pair64(net, v, x, (), bn=bn, param_filter=pf, reduction="trace")
      _close(got, want)


def test_auto_picks_structured_only_where_taps_cover_the_parameters():
  net, v, x = _tapped()
  flax_net = TinyBNNet()
  fv = jax.jit(flax_net.init)(jax.random.key(0), x)
  cover = structured.coverage(net, v, x, (), train=True, chosen=ntk.split_params(v["params"], lambda p: True)[0])
  assert set(cover.covered) == set(ntk.split_params(v["params"], None)[0])
  with pytest.raises(ValueError, match="no tapped layers"):
    structured.coverage(flax_net, fv, x, (), train=True, chosen=ntk.split_params(fv["params"], lambda p: True)[0])
  # flax.linen.Conv has no tap: named error when asked for, Jacobian contraction under 'auto'
  with pytest.raises(ValueError, match="no tapped layers"):
    ntk.empirical_ntk_fn(flax_net, implementation="structured")(fv, x)
  auto = ntk.empirical_ntk_fn(flax_net, bn="train")(fv, x)
  ref = ntk.empirical_ntk_fn(flax_net, bn="train", implementation="jacobian_contraction")(fv, x)
  np.testing.assert_array_equal(auto, ref)


def test_auto_traces_the_tap_coverage_once(monkeypatch):
  net, v, x = _tapped()
  calls = []
  shapes = structured._shapes
  monkeypatch.setattr(structured, "_shapes", lambda *a: calls.append(1) or shapes(*a))
  jax.make_jaxpr(ntk.empirical_ntk_fn(net, bn="train"))(v, x)
  assert len(calls) == 1


def test_a_layer_applied_twice_is_refused():
  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      dense = layers.Dense(3, 3)
      return dense(jax.nn.relu(dense(x)))
  net = Twice()
  x = jnp.ones((2, 3))
  v = jax.jit(net.init)(jax.random.key(0), x)
  with pytest.raises(ValueError, match="applied 2 times"):
    ntk.empirical_ntk_fn(net, implementation="structured")(v, x)
  assert jax.jit(ntk.empirical_ntk_fn(net))(v, x).shape == (2, 2)  # auto falls back


def test_default_chunks_hold_eight_coupled_rows_in_flight():
  assert structured.default_chunk(4) == 4
  assert structured.default_chunk(64) == 8
  assert structured.default_chunk(256) == 8


@pytest.mark.parametrize("variant,bn", [("benchmark", "eval"),
                                        pytest.param("benchmark", "train", marks=pytest.mark.slow),
                                        pytest.param("paper_code", "eval", marks=pytest.mark.slow),
                                        pytest.param("paper_code", "train", marks=pytest.mark.slow)])
def test_nb201_switch_network_taps_inside_lax_switch(variant, bn):
  """select='switch' runs only the selected ops (taps sown after the switch,
  unselected ops skipped by lax.cond); its kernel equals the Jacobian
  contraction of the network built for that arch alone, in float64 (both
  conv ops selected)."""
  both = "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
  net, v, x, _ = nb201_setup(variant)
  switch = nb201.Network(C=4, N=1, variant=variant, select="switch")
  with jax.enable_x64(True):
    v64, x64 = _f64(v), jnp.asarray(np.asarray(x), jnp.float64)
    got = jax.jit(ntk.empirical_ntk_fn(switch, bn=bn, implementation="structured", chunk_size=3))
    want = ntk.empirical_ntk_fn(net, bn=bn, implementation="jacobian_contraction")
    for arch in (both,) if (variant, bn) == ("benchmark", "eval") else (both, MIXED):  # the fast case: one arch
      static = jax.jit(lambda v_, x_: want(v_, x_, arch))  # the network built for this arch alone
      _close(np.asarray(got(v64, x64, jnp.asarray(nb201.decode(arch)))), np.asarray(static(v64, x64)))


@pytest.mark.slow
def test_nb201_arch_as_data_coupled_paper_code():
  net, v, x, ops = nb201_setup("paper_code")
  _close(*_pair64(net, v, x, (jnp.asarray(ops),), bn="eval", param_filter="paper_code", chunk_size=3))


# Static arch string / traced op array, crossed with BN mode, filter, reduction and chunking (a ragged last
# chunk each time; the full kernel's 40 coupled rows in 3 chunks, as 14 unrolled ones compiled for minutes).
# Each case is two float64 compilations of the masked network, so each runs on one variant: the benchmark
# network's eval kernel is per-sample, the paper code's couples the samples in both modes.
@pytest.mark.slow
@pytest.mark.parametrize("variant,static,bn,param_filter,reduction,chunk", [
    ("benchmark", True, "eval", "all", "sum_logits", 3),
    ("benchmark", False, "train", "all", "full", 16),
    ("paper_code", True, "train", "paper_code", "trace", 3),
    ("paper_code", False, "eval", "paper_code", "sum_logits", 3)])
def test_nb201_static_and_arch_as_data(variant, static, bn, param_filter, reduction, chunk):
  net, v, x, ops = nb201_setup(variant)
  args = (MIXED,) if static else (jnp.asarray(ops),)
  _close(*_pair64(net, v, x, args, bn=bn, param_filter=param_filter, reduction=reduction, chunk_size=chunk))


@pytest.mark.slow
@pytest.mark.parametrize("variant", nb201.VARIANTS)
def test_nb201_random_archs(variant):
  """Property check over seeded random archs (a degenerate one included):
  one compilation per BN mode serves them all."""
  net, v, x, _ = nb201_setup(variant)
  archs = [nb201.decode(a) for a in ARCHS] + list(nb201.sample(jax.random.key(7), 3))
  archs.append(nb201.decode("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"))
  with jax.enable_x64(True):
    v64, x64 = _f64(v), jnp.asarray(np.asarray(x), jnp.float64)
    for bn in ("eval", "train"):
      fns = [jax.jit(ntk.empirical_ntk_fn(net, bn=bn, implementation=impl, param_filter="paper_code"))
             for impl in ("structured", "jacobian_contraction")]
      for ops in archs:
        got, want = (np.asarray(f(v64, x64, jnp.asarray(ops))) for f in fns)
        if np.abs(want).max() == 0:
          np.testing.assert_array_equal(got, want)
        else:
          _close(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_nb101_per_graph_and_masked(bn):
  kw = dict(stem_channels=4, num_stacks=2, modules_per_stack=1)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  per_graph = nb101.Network(INCEPTION, **kw)
  v = jax.jit(per_graph.init)(jax.random.key(1), x[:1])
  _close(*_pair64(per_graph, v, x, (), bn=bn, reduction="trace"))
  net = masked.MaskedNetwork(**kw)
  arch = masked.encode(INCEPTION, stem_channels=4, num_stacks=2)
  mv = jax.jit(net.init)(jax.random.key(2), x[:1], arch)
  _close(*_pair64(net, mv, x, (arch,), bn=bn, param_filter="paper_code"))


# Every op of the five NDS spaces in one genotype, each once: the normal cell concatenates every node
# (DARTS, PNAS), the reduction cell its loose ends (ENAS, NASNet, Amoeba); a reduction slot that reads a
# cell input runs its op at stride 2 (skip_connect: the factorized reduce).
EVERY_NDS_OP = nds.Genotype(
    (("conv_1x1", 0), ("conv_3x1_1x3", 1), ("conv_7x1_1x7", 2), ("dil_conv_5x5", 0),
     ("dil_sep_conv_3x3", 3), ("max_pool_5x5", 1), ("max_pool_7x7", 4), ("skip_connect", 2)), (2, 3, 4, 5),
    (("conv_3x3", 0), ("sep_conv_7x7", 1), ("dil_conv_3x3", 0), ("sep_conv_5x5", 2),
     ("avg_pool_3x3", 1), ("sep_conv_3x3", 3), ("max_pool_3x3", 0), ("skip_connect", 1)), (4, 5))


def test_one_genotype_holds_every_op_of_every_nds_space():
  ops = {op for cell in (EVERY_NDS_OP.normal, EVERY_NDS_OP.reduce) for op, _ in cell}
  assert ops == {op for sp in nds.SPACES.values() for op in sp.ops}
  assert nds.validate(EVERY_NDS_OP) == EVERY_NDS_OP


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_nds_ops_of_every_space(bn):
  net = nds.Network(nds.Arch(EVERY_NDS_OP, 4, 3))  # a normal cell, then two reduction cells
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  v = jax.jit(net.init)(jax.random.key(1), x[:1])
  _close(*_pair64(net, v, x, (), bn=bn, reduction="trace"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", nb201.VARIANTS)
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_nb201_equals_official_torch_loop_in_float64(variant, bn):
  """The TE-NAS/paper-code per-sample loop on xautodl's network, in double."""
  torch = pytest.importorskip("torch")
  pytest.importorskip("xautodl")
  from tests import torch_nb201
  C, N = 4, 1
  net = nb201.Network(C=C, N=N, variant=variant)
  x = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
  for i, arch in enumerate(ARCHS):
    torch.manual_seed(i)
    ref = torch_nb201.official_network(arch, C, N, 10, variant).double()
    torch_nb201.randomize_bn(ref, seed=i)
    ops = nb201.decode(arch)
    v = torch_nb201.copy_into(ref, jax.jit(net.init)(jax.random.key(0), x.astype(np.float32), ops), arch, N)
    ref.train(bn == "train")
    weights = [p for name, p in ref.named_parameters() if "weight" in name and "classifier" not in name]
    logits = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[1]
    rows = []
    for s in range(x.shape[0]):
      grads = torch.autograd.grad(logits[s].sum(), weights, retain_graph=True, allow_unused=True)
      rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]).numpy())
    g = np.stack(rows)
    with jax.enable_x64(True):
      fn = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, param_filter="paper_code", implementation="structured"))
      got = np.asarray(fn(_f64(v), jnp.asarray(x), jnp.asarray(ops)))
    _close(got, g @ g.T, rtol=1e-9)
