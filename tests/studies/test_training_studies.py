"""The studies that train, end to end on tiny networks: post_training,
kernel_evolution, trajectories, search (and post_training and search on an
NDS universe by config alone)."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import data, ground_truth, scoring, stats
from ntkjax.configs import kernel_evolution as ke_config
from ntkjax.configs import post_training as pt_config
from ntkjax.configs import search as search_config
from ntkjax.configs import trajectories as tr_config
from ntkjax.experiments import launch
from ntkjax.spaces import nb201, nds
from ntkjax.studies import kernel_evolution, post_training, search, trajectories

pytestmark = pytest.mark.slow


def test_post_training_metrics_at_t(tmp_path, tiny):
  c = tiny(pt_config.get_config("small"))
  c.space.num_archs = 3
  result = post_training.run(c, tmp_path)
  assert {r.t for r in result.rows} == {0, 1, 2}
  assert not (tmp_path / "checkpoints" / "00000").exists()
  names = {p.name for p in launch.write_outputs(result, tmp_path)}
  assert {"post_training.png", "at_init_and_lga_t.png", "post_training.csv"} <= names
  # t = 0 is the at-init score of the same minibatch and initialisation
  net = nb201.Network(C=4, N=1)
  idx = np.loadtxt(tmp_path / "minibatch.csv", delimiter=",", skiprows=1, dtype=int)
  ds = data.load("digits16")
  x = data.normalize(ds.images[idx[:, 0]], ds.mean, ds.std)
  k_init = jax.random.split(jax.random.key(0), 3)[0]
  v = jax.jit(net.init)(k_init, x[:1], jnp.zeros(6, jnp.int32))
  reference = scoring.score_fn(net)
  for a in result.archs:
    want = reference(v, x, jnp.asarray(idx[:, 1]), jnp.asarray(nb201.decode(a.arch)))
    assert a.values[("lga_eval", 0)] == pytest.approx(float(want["lga_eval"]), rel=1e-4, abs=1e-6)
    if not a.degenerate:
      assert a.values[("fnorm_eval", 2)] != pytest.approx(a.values[("fnorm_eval", 0)], rel=1e-6)
    assert a.loss[2] > 0


def test_kernel_evolution(tmp_path, tiny):
  c = tiny(ke_config.get_config("small"))
  c.space.num_archs = 2
  result = kernel_evolution.run(c, tmp_path)
  assert result.epochs == [0, 1, 2]
  for a in result.archs:
    assert a.values[("correlation", 0)] == pytest.approx(1.0, abs=1e-6) or a.values[("correlation", 0)] == 0
    assert a.values[("relative_difference", 0)] == 0
    if not a.degenerate:
      assert a.values[("relative_difference", 2)] > 0 and a.values[("correlation", 2)] < 1
  assert launch.write_outputs(result, tmp_path)[-1].stat().st_size > 0


def test_trajectories(tmp_path, tiny):
  c = tiny(tr_config.get_config("small"))
  c.per_group, c.epochs, c.bn_modes = 1, (1,), ("eval",)
  result = trajectories.run(c, tmp_path)
  series = result.series()
  assert set(series) == {"high", "mid", "low"} and series["high"]["lga_eval"].shape == (1, 2)
  groups = [line.split(",")[0] for line in (tmp_path / "archs.txt").read_text().split()]
  assert groups == ["high", "mid", "low"]
  assert launch.write_outputs(result, tmp_path)[-1].name == "trajectories.png"


def test_post_training_on_an_nds_space_by_config_alone(tmp_path, tiny, nds_truth_json):
  """A network per graph: each arch is initialised, trained and measured on
  its own network, built at the config's (reduced) size."""
  c = tiny(pt_config.get_config("small,nds_enas"))
  c.ground_truth.path = str(nds_truth_json)
  c.space.num_archs = 3
  c.train.num_images = 64
  c.epochs, c.bn_modes = (1,), ("eval",)
  result = post_training.run(c, tmp_path)
  truth = ground_truth.read_nds_json(nds_truth_json, "enas")
  assert len(result.archs) == 3 and all(a.arch in truth for a in result.archs)
  for a in result.archs:  # benchmark keys (width 16, depth 8) built at width 4, depth 3
    assert a.params == nds.num_params(nds.decode(a.arch, "enas")._replace(width=4, depth=3))
    assert a.loss[1] > 0 and a.values[("fnorm_eval", 1)] != pytest.approx(a.values[("fnorm_eval", 0)])
    assert a.benchmark_index == truth.index[a.arch]
  assert {r.t for r in result.rows} == {0, 1}
  assert result.summary().startswith("nds_enas") and "params" in result.summary()
  tau_params = next(r.correlation.tau for r in result.rows if r.correlation.metric == "params"
                    and r.correlation.subset == "all")
  want = stats.kendall_tau([a.params for a in result.archs], truth.lookup([a.arch for a in result.archs])).value
  assert tau_params == pytest.approx(want)


def _tiny_search(c):
  c.scorers = ("lga_eval@1", "params", "oracle")
  c.rs.num_archs, c.rea.population_size, c.rea.max_evals = 3, 2, 4
  c.train.num_images = 64
  return c


def test_search_study_runs_resumes_and_tabulates(tmp_path, tiny, truth_csv):
  c = _tiny_search(tiny(search_config.get_config("small")))
  result = search.run(c, tmp_path)
  assert {(r.method, r.scorer) for r in result.table} == {(m, s) for m in ("rs", "rea") for s in c.scorers}
  runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
  assert len(runs) == 2 * 2 * 3
  truth = ground_truth.read_csv(truth_csv, arch_column="arch", accuracy_column="acc")
  for r in runs:
    assert float(r["accuracy"]) == truth[r["best_arch"]] and not nb201.is_degenerate(r["best_arch"])
    hist = list(csv.DictReader(open(tmp_path / "histories" /
                                    f"{r['method']}_{r['scorer'].replace('@', '_at')}_seed{r['seed']}.csv")))
    assert len(hist) == int(r["evaluations"]) and max(float(h["score"]) for h in hist) == float(r["best_score"])
    if r["scorer"] == "oracle":  # the oracle picks the best of what it saw
      assert float(r["accuracy"]) == max(truth[h["arch"]] for h in hist)
  # One measurement per distinct arch, charged at its measured cost wherever a search asks for it.
  memo = {r["arch"]: r for r in csv.DictReader(open(tmp_path / "scores" / "lga_eval_at1.csv"))}
  for r in runs:
    if r["scorer"] != "lga_eval@1":
      continue
    for h in csv.DictReader(open(tmp_path / "histories" / f"{r['method']}_lga_eval_at1_seed{r['seed']}.csv")):
      if not nb201.is_degenerate(h["arch"]) and h["cached"] == "0":
        assert h["score"] == memo[h["arch"]]["score"] and h["cost_s"] == memo[h["arch"]]["cost_s"]
  row = next(r for r in result.table if r.scorer == "lga_eval@1")
  assert 0 < row.speed_up < 200 and (tmp_path / "unit_costs.json").exists()
  assert "speed-up" in result.summary()
  again = search.run(c, tmp_path)  # everything is done: same table, nothing rerun
  assert again.table == result.table
  with pytest.raises(ValueError, match="unknown scorer 'lga@3'"):
    bad = c.copy_and_resolve_references()
    bad.scorers = ("lga@3",)
    search.run(bad, tmp_path / "bad")


def test_search_on_an_nds_space_stays_in_its_ground_truth(tmp_path, tiny, nds_truth_json):
  """RS and REA over an NDS universe: archs compiled per graph, REA's
  mutations land on archs that have ground truth."""
  c = _tiny_search(tiny(search_config.get_config("small,nds_enas")))
  c.ground_truth.path = str(nds_truth_json)
  c.train.num_images = 32
  c.scorers, c.num_seeds, c.unit_cost_archs = ("lga_eval@0", "params"), 1, 1
  c.rs.num_archs = 2
  result = search.run(c, tmp_path)
  truth = ground_truth.read_nds_json(nds_truth_json, "enas")
  runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
  assert len(runs) == 4 and all(r["best_arch"] in truth and r["compile_s"] == "" for r in runs)
  hist = list(csv.DictReader(open(tmp_path / "histories" / "rea_params_seed0.csv")))
  assert len(hist) == 4 and all(h["arch"] in truth for h in hist)
  best = max(hist, key=lambda h: float(h["score"]))["arch"]
  assert next(r for r in runs if r["run"] == "rea|params|0")["best_arch"] == best
  assert "Search on nds_enas" in result.summary()
  assert {r.scorer for r in result.table} == {"lga_eval@0", "params"}
