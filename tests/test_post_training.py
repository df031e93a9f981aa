"""Section 4 studies on a tiny network: metrics at t, resume inside an
architecture, kernel evolution, trajectories."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import kernel_evolution as ke_config
from configs import post_training as pt_config
from configs import trajectories as tr_config
from ntkjax import data, post_training, score
from ntkjax.spaces import api, nb201


def _tiny(cfg, truth_csv):
  cfg.space.C, cfg.space.N = 4, 1
  cfg.data.name, cfg.data.root, cfg.data.batch_size = "digits16", "", 8
  cfg.train.num_images, cfg.train.batch_size = 96, 32
  cfg.epochs = (1, 2)
  cfg.ground_truth.path = str(truth_csv)
  cfg.ground_truth.arch_column, cfg.ground_truth.accuracy_column = "arch", "acc"
  cfg.ground_truth.index_column = "idx"
  return cfg


def test_post_training_metrics_at_t(tmp_path, truth_csv):
  c = _tiny(pt_config.get_config("small"), truth_csv)
  c.space.num_archs = 3
  result = post_training.run_post_training(c, tmp_path)
  assert {r["t"] for r in result} == {0, 1, 2}
  assert (tmp_path / "post_training.png").stat().st_size > 0
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(rows) == 3 and not (tmp_path / "checkpoints" / "00000").exists()
  # t = 0 is the at-init score of the same minibatch and initialisation
  net = nb201.Network(C=4, N=1)
  idx = np.loadtxt(tmp_path / "minibatch.csv", delimiter=",", skiprows=1, dtype=int)
  ds = data.load("digits16")
  x = data.normalize(ds.images[idx[:, 0]], ds.mean, ds.std)
  k_init = jax.random.split(jax.random.key(0), 3)[0]
  v = net.init(k_init, x[:1], jnp.zeros(6, jnp.int32))
  for r in rows:
    ops = jnp.asarray(nb201.decode(r["arch"]))
    want = score.score_fn(net)(v, x, jnp.asarray(idx[:, 1]), ops)
    assert float(r["lga_eval@0"]) == pytest.approx(float(want["lga_eval"]), rel=1e-4, abs=1e-6)
    if not int(r["degenerate"]):
      assert float(r["fnorm_eval@2"]) != pytest.approx(float(r["fnorm_eval@0"]), rel=1e-6)
    assert r["loss@0"] == "" and float(r["loss@2"]) > 0


class Interrupted(Exception):
  pass


def test_track_resumes_inside_an_architecture(tmp_path):
  ds = data.load("digits16")
  ds = ds._replace(images=ds.images[:64], labels=ds.labels[:64])
  archs = [nb201.encode(o) for o in nb201.sample(jax.random.key(1), 2)]
  calls = {"measure": 0}

  def measure(variables, inst):
    calls["measure"] += 1
    if calls.get("crash") and calls["measure"] == 3:  # during epoch 2 of the first arch
      raise Interrupted
    return {"w": jnp.sum(jax.tree.leaves(variables["params"])[0])}
  kw = dict(space=api.NB201Space(C=4, N=1), init_key=jax.random.key(0), train_data=ds, ts=[0, 1, 2, 3],
            make_measure=lambda net: measure, names=["w"], key=jax.random.key(2), batch_size=32)
  post_training.track(tmp_path / "ref" / "r.csv", archs, **kw)
  ref = list(csv.DictReader(open(tmp_path / "ref" / "r.csv")))

  calls.update(measure=0, crash=True)
  with pytest.raises(Interrupted):
    post_training.track(tmp_path / "run" / "r.csv", archs, **kw)
  saved = json.loads((tmp_path / "run" / "checkpoints" / "00000" / "measured.json").read_text())
  assert sorted(saved) == ["0", "1"]
  calls.update(measure=0, crash=False)
  post_training.track(tmp_path / "run" / "r.csv", archs, **kw)
  got = list(csv.DictReader(open(tmp_path / "run" / "r.csv")))
  for a, b in zip(got, ref):
    for col in ("w@0", "w@1", "w@2", "w@3", "loss@3"):
      assert float(a[col]) == pytest.approx(float(b[col]), rel=1e-6), col
  # the first arch resumed after epoch 1 (2 fresh measures: t=2, 3 plus a cached t=0)
  assert calls["measure"] == 1 + 2 + 4 - 1


def test_kernel_evolution(tmp_path, truth_csv):
  c = _tiny(ke_config.get_config("small"), truth_csv)
  c.space.num_archs = 2
  rows = post_training.run_kernel_evolution(c, tmp_path)
  assert (tmp_path / "kernel_evolution.png").stat().st_size > 0
  for r in rows:
    assert float(r["correlation@0"]) == pytest.approx(1.0, abs=1e-6) or float(r["correlation@0"]) == 0
    assert float(r["relative_difference@0"]) == 0
    if not nb201.is_degenerate(r["arch"]):
      assert float(r["relative_difference@2"]) > 0 and float(r["correlation@2"]) < 1


def test_trajectories(tmp_path, truth_csv):
  c = _tiny(tr_config.get_config("small"), truth_csv)
  c.per_group, c.epochs = 1, (1,)
  c.bn_modes = ("eval",)
  series = post_training.run_trajectories(c, tmp_path)
  assert set(series) == {"high", "mid", "low"}
  assert series["high"]["lga_eval"].shape == (1, 2)
  assert (tmp_path / "trajectories.png").stat().st_size > 0
  groups = [line.split(",")[0] for line in (tmp_path / "archs.txt").read_text().split()]
  assert groups == ["high", "mid", "low"]


def test_training_configs_parse():
  for mod in (pt_config, ke_config, tr_config):
    for arg in (None, "cpu", "small", "small,paper_code"):
      c = mod.get_config(arg)
      assert c.train.batch_size in (1024, 256, 128) and max(c.epochs) >= 3
  assert pt_config.get_config().epochs == (1, 3, 5, 10)


def test_post_training_on_an_nds_space_by_config_alone(tmp_path, nds_truth_json):
  """A network per graph: each arch is initialised, trained and measured on
  its own network, built at the config's (reduced) size."""
  from ntkjax import benchmarks
  from ntkjax.spaces import nds
  c = pt_config.get_config("small,nds_enas")
  c.ground_truth.path = str(nds_truth_json)
  c.space.num_archs, c.space.width, c.space.depth = 3, 4, 3
  c.data.name, c.data.root, c.data.batch_size = "digits16", "", 8
  c.train.num_images, c.train.batch_size = 64, 32
  c.epochs, c.bn_modes = (1,), ("eval",)
  result = post_training.run_post_training(c, tmp_path)
  truth, _ = benchmarks.read_nds_json(nds_truth_json, "enas")
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(rows) == 3 and all(r["arch"] in truth for r in rows)
  for r in rows:  # benchmark keys (width 16, depth 8) built at width 4, depth 3
    assert int(r["params"]) == nds.num_params(nds.decode(r["arch"], "enas")._replace(width=4, depth=3))
    assert float(r["loss@1"]) > 0 and float(r["fnorm_eval@1"]) != pytest.approx(float(r["fnorm_eval@0"]))
  assert {r["t"] for r in result} == {0, 1}
  summary = (tmp_path / "summary.txt").read_text()
  assert summary.startswith("nds_enas") and "params" in summary
  assert (tmp_path / "at_init_and_lga_t.png").stat().st_size > 0
  tau_params = next(r["tau"] for r in result if r["metric"] == "params" and r["subset"] == "all")
  from ntkjax import stats
  want = stats.kendall_tau([float(r["params"]) for r in rows], truth.lookup([r["arch"] for r in rows])).value
  assert tau_params == pytest.approx(want)
