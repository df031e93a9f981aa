"""The engine's per-architecture scoring loop: rows as it goes, resume,
typed rows, the non-finite flag."""

import csv

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import data, metrics, progress, proxies, scoring
from ntkjax.spaces import api, nb201


def _batch(n=8):
  ds = data.load_digits16()
  x, y, _ = data.select_minibatch(jax.random.key(3), ds, n)
  return x, y


def test_metric_keys_and_columns():
  assert scoring.metric_columns(("eval",)) == ["fnorm_eval", "mean_eval", "ncn_eval", "lga_eval"]
  assert scoring.MetricKey.parse("lga_eval") == scoring.MetricKey("lga", "eval")
  assert scoring.MetricKey.parse("ncn_train").column == "ncn_train"
  with pytest.raises(ValueError, match="unknown metric column 'lga_test'"):
    scoring.MetricKey.parse("lga_test")
  with pytest.raises(ValueError, match="unknown BN mode 'batch'"):
    scoring.metric_columns(("batch",))


@pytest.mark.slow  # 85-100 s of compilation on 2 cores
def test_rows_are_written_as_they_go_and_a_rerun_resumes(tmp_path, monkeypatch):
  x, y = _batch()
  space = api.NB201Space(C=4, N=1)
  archs = space.sample(jax.random.key(0), 4)
  kw = dict(space=space, images=x, labels=y, key=jax.random.key(1), bn_modes=("eval",))
  rows = scoring.score_architectures(tmp_path / "r.csv", archs, **kw)
  assert [r.arch for r in rows] == archs and [r.position for r in rows] == [0, 1, 2, 3]
  net = space.net
  v = jax.jit(net.init)(jax.random.key(1), x[:1], jnp.zeros(6, jnp.int32))  # the cached executable
  reference = scoring.score_fn(net, bn_modes=("eval",))
  for r in rows:
    want = reference(v, x, y, jnp.asarray(nb201.decode(r.arch)))
    assert r.values["lga_eval"] == pytest.approx(float(want["lga_eval"]), rel=1e-5, abs=1e-7)
    assert r.params == nb201.num_params(r.arch, C=4, N=1) and r.degenerate == nb201.is_degenerate(r.arch)
    assert not r.nonfinite and r.benchmark_index is None

  # An interrupt: the last row lost, a half-written one left behind.
  lines = (tmp_path / "r.csv").read_text().splitlines()
  (tmp_path / "r.csv").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
  calls = []
  real = scoring.score_fn

  def counting(*a, **k):
    fn = real(*a, **k)
    return lambda *args, **kw: calls.append(1) or fn(*args, **kw)
  monkeypatch.setattr(scoring, "score_fn", counting)
  again = scoring.score_architectures(tmp_path / "r.csv", archs, **kw)
  assert len(calls) == 1  # only the lost architecture is recomputed
  for a, b in zip(again, rows):  # same seed, same numbers
    assert a.arch == b.arch
    for col in scoring.metric_columns(("eval",)):
      assert a.values[col] == pytest.approx(b.values[col], rel=1e-5)
  on_disk = list(csv.DictReader(open(tmp_path / "r.csv")))
  assert [r["arch"] for r in on_disk] == archs


@pytest.mark.slow
def test_proxies_join_the_rows_with_the_values_of_their_own_function(tmp_path):
  x, y = _batch()
  space = api.NB201Space(C=4, N=1)
  archs = space.sample(jax.random.key(0), 2)
  rows = scoring.score_architectures(tmp_path / "r.csv", archs, space=space, images=x, labels=y,
                                     key=jax.random.key(1), bn_modes=("eval",), proxies=("nwot", "flops", "params"))
  header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
  assert header == scoring.result_columns(("eval",), ("nwot", "flops", "params"))
  assert "nwot" in header and "flops" in header and header.count("params") == 1
  v = jax.jit(space.net.init)(jax.random.key(1), x[:1], jnp.zeros(6, jnp.int32))
  of_proxies = jax.jit(proxies.proxies_fn(space.net, ["nwot"]))
  for i, r in enumerate(rows):
    k = jax.random.fold_in(scoring.proxy_key(jax.random.key(1)), i)
    want = of_proxies(v, x, y, k, jnp.asarray(nb201.decode(r.arch)))["nwot"]
    assert r.values["nwot"] == pytest.approx(float(want), rel=1e-5)
    assert r.values["flops"] == space.flops(r.arch) / 1e6
  with pytest.raises(ValueError, match="unknown proxy 'nwat'"):
    scoring.result_columns(("eval",), ("nwat",))
  # Proxies alone (no BN mode, no kernel): the same values, progress notes the first proxy.
  lines = []
  alone = scoring.score_architectures(tmp_path / "p.csv", archs, space=space, images=x, labels=y,
                                      key=jax.random.key(1), bn_modes=(), proxies=("nwot",),
                                      progress=progress.Progress(lines.append))
  assert (tmp_path / "p.csv").read_text().splitlines()[0].split(",") == scoring.result_columns((), ("nwot",))
  assert [r.values["nwot"] for r in alone] == pytest.approx([r.values["nwot"] for r in rows], rel=1e-5)
  assert any("nwot=" in line for line in lines)


class _Overflowing(nn.Module):
  """Two dense layers with 1e20 weights: the NTK overflows float32."""

  def couples_samples(self, train):
    return False

  @nn.compact
  def __call__(self, x, train=False):
    h = jax.nn.relu(nn.Dense(4, kernel_init=nn.initializers.constant(1e20), name="hidden")(x.reshape(len(x), -1)))
    return nn.Dense(3, kernel_init=nn.initializers.constant(1e20), name="classifier")(h)


class _OneNetworkSpace:
  """A minimal ``Space``: every arch is the same network."""
  name, shares_variables, shares_compilation = "toy", True, True

  def __init__(self, net):
    self.net = net

  def validate(self, arch):
    return arch

  def sample(self, key, n):
    return [f"a{i}" for i in range(n)]

  def mutate(self, key, arch):
    return arch

  def num_params(self, arch):
    return 7

  def is_degenerate(self, arch):
    return False

  def index(self, arch):
    return int(arch[1:])

  def benchmark_index(self, arch):
    return None

  def candidate(self, arch):
    return api.Candidate(self.net, (), "toy")

  def batched(self):
    return self


@pytest.mark.parametrize("compat", ["ntkjax", "paper_code"])
def test_an_overflowed_kernel_is_flagged_and_keeps_its_values(tmp_path, compat):
  space = _OneNetworkSpace(_Overflowing())
  assert isinstance(space, api.Space)
  x, y = _batch(6)
  rows = scoring.score_architectures(tmp_path / "r.csv", ["a0"], space=space, images=x, labels=y,
                                     key=jax.random.key(0), bn_modes=("eval",), compat=compat)
  (row,) = rows
  assert row.nonfinite and not row.degenerate
  if compat == "paper_code":  # the official substitute is kept, and the row is still flagged
    assert row.values["lga_eval"] == pytest.approx(metrics.PAPER_CODE_FALLBACK)
  else:
    assert np.isnan(row.values["lga_eval"])
  assert list(csv.DictReader(open(tmp_path / "r.csv")))[0]["nonfinite"] == "1"


def test_score_fn_is_one_function_per_network_and_options():
  net = nb201.Network(C=4, N=1)
  f = scoring.score_fn(net, bn_modes=("eval",), param_filter="paper_code")
  assert scoring.score_fn(nb201.Network(C=4, N=1), bn_modes=("eval",), param_filter="paper_code") is f
  assert scoring.score_fn(net, bn_modes=("eval",), param_filter="all") is not f
  assert scoring.score_fn(nb201.Network(C=8, N=1), bn_modes=("eval",), param_filter="paper_code") is not f
  assert scoring.score_fn(net, bn_modes=("eval", "train"), param_filter="paper_code") is not f

  class Every:  # an unhashable option: a function of its own each time
    __hash__ = None

    def __call__(self, path):
      return True
  keep = Every()
  assert scoring.score_fn(net, param_filter=keep) is not scoring.score_fn(net, param_filter=keep)


def test_proxies_jit_is_one_function_per_network_and_names_and_score_fn_shares_it():
  net = nb201.Network(C=4, N=1)
  f = scoring.proxies_jit(net, ["snip", "synflow"], num_classes=10)
  assert scoring.proxies_jit(nb201.Network(C=4, N=1), ("snip", "synflow"), num_classes=10) is f
  assert scoring.proxies_jit(net, ["snip"], num_classes=10) is not f
  assert scoring.proxies_jit(net, ["snip", "synflow"], num_classes=100) is not f
  assert scoring.proxies_jit(nb201.Network(C=8, N=1), ["snip", "synflow"], num_classes=10) is not f
  assert scoring.score_fn(net, bn_modes=("eval",), proxies=("snip", "synflow"), num_classes=10).proxies is f
  with pytest.raises(ValueError, match="unknown proxy"):
    scoring.proxies_jit(net, ["snipp"])
