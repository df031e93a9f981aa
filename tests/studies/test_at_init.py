"""The at-initialisation studies end to end on tiny networks: score,
rank_correlation, deciles, init_schemes (and the score job on NB101 and
NDS by config alone)."""

import csv

import numpy as np
import pytest

from ntkjax import ground_truth, scoring
from ntkjax.configs import deciles as deciles_config
from ntkjax.configs import init_schemes as init_config
from ntkjax.configs import rank_correlation as rc_config
from ntkjax.configs import score as score_config
from ntkjax.experiments import launch
from ntkjax.spaces import nb101, nb201, nds
from ntkjax.studies import deciles, init_schemes, rank_correlation, score, setup


@pytest.mark.slow
def test_score_job_writes_rows_resumes_and_refuses_another_config(tmp_path, tiny):
  c = tiny(score_config.get_config("small"))
  c.space.num_archs = 3
  result = score.run(c, tmp_path)
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(rows) == 3 and [r["arch"] for r in rows] == [s.arch for s in result.scores]
  for r in result.scores:
    assert -1 <= r.values["lga_eval"] <= 1 and r.values["ncn_eval"] <= -1 and not r.nonfinite
    assert r.params == nb201.num_params(r.arch, 10, C=4, N=1)
  assert "lga_eval" in result.summary()
  assert "NB201 benchmark network, C=4, N=1 (reduced" in result.summary()
  assert "Next: Kendall tau at the paper's scale" in result.summary() and "--config full" in result.summary()
  assert result.kernel_arch == result.scores[0].arch and result.kernels["eval"].shape == (8, 8)
  written = {p.name for p in launch.write_outputs(result, tmp_path)}
  assert {"metrics.png", "kernel.png"} <= written and not (tmp_path / ".lock").exists()
  again = score.run(c, tmp_path)  # all on disk: the same rows
  assert again.scores == result.scores
  np.testing.assert_allclose(again.kernels["eval"], result.kernels["eval"], rtol=1e-6)
  c.seed = 1
  with pytest.raises(ValueError, match="different config"):
    score.run(c, tmp_path)


@pytest.mark.slow
def test_score_job_with_ground_truth_gives_kendall_tau(tmp_path, tiny, truth_csv):
  c = tiny(score_config.get_config("small"))
  c.space.num_archs = 4
  result = score.run(c, tmp_path)
  assert "tau" in result.summary() and "rho" in result.summary()
  assert all(r.benchmark_index is not None for r in result.scores)  # the official index, from the truth
  idx = {r["arch"]: int(r["idx"]) for r in csv.DictReader(open(truth_csv))}
  assert [r.benchmark_index for r in result.scores] == [idx[r.arch] for r in result.scores]
  c.ground_truth.accuracy_column = "accuracy"
  with pytest.raises(ValueError, match=r"no column\(s\) \['accuracy'\]"):
    score.run(c, tmp_path / "w2")
  assert not (tmp_path / "w2" / "config.json").exists()  # a bad start writes nothing


@pytest.mark.slow
def test_score_job_on_nb101_specs_of_the_benchmark(tmp_path, tiny, shared_data):
  shared_data("nasbench101/nb101_nasbench_vis_1k.json")
  c = tiny(score_config.get_config("small,nb101"))
  c.space.num_archs = 2
  result = score.run(c, tmp_path)
  truth = setup.truth_from_config(c.ground_truth)
  assert len(result.scores) == 2 and all(r.arch in truth for r in result.scores)
  for r in result.scores:  # keys are graph hashes; params counted for the configured network
    assert r.params == nb101.num_params(truth.universe[r.arch], stem_channels=8, num_stacks=2, modules_per_stack=1)
    assert all(np.isfinite(v) for v in r.values.values())
  assert "tau" in result.summary()


@pytest.mark.slow
def test_score_job_on_an_nds_space_compiles_per_arch(tmp_path, tiny):
  c = tiny(score_config.get_config("small,nds_enas"))
  c.space.num_archs = 2
  result = score.run(c, tmp_path)
  for r in result.scores:
    arch = nds.decode(r.arch, "enas")
    assert (arch.width, arch.depth) == (4, 3) and r.params == nds.num_params(arch)
    assert r.values["fnorm_eval"] > 0 and -1 <= r.values["lga_eval"] <= 1
  c2 = tiny(score_config.get_config("small"))
  c2.space.name = "nds_foo"
  c2.ground_truth.path = None
  with pytest.raises(ValueError, match="unknown space 'nds_foo'"):
    score.run(c2, tmp_path / "bad")
  c3 = tiny(score_config.get_config("small"))
  c3.space.name, c3.ground_truth.path = "nb101", None
  with pytest.raises(ValueError, match="space 'nb101' draws its archs from a benchmark's"):
    score.run(c3, tmp_path / "bad2")


@pytest.mark.slow
def test_rank_correlation_run_resume_and_outputs(tmp_path, tiny, monkeypatch):
  c = tiny(rc_config.get_config("small"))
  c.space.num_archs, c.space.sampling = 5, "index_order"
  result = rank_correlation.run(c, tmp_path)
  archs = (tmp_path / "archs.txt").read_text().split()
  truth = ground_truth.read_csv(c.ground_truth.path, arch_column="arch", accuracy_column="acc", index_column="idx")
  assert [truth.index[a] for a in archs] == [0, 1, 2, 3, 4]  # the first official indices
  assert {r.metric for r in result.table} == set(scoring.metric_columns()) | {"params", "random"}
  assert result.params_all.n == 15625 and result.params_reachable.n == 9445
  written = launch.write_outputs(result, tmp_path)
  assert {p.name for p in written} == {"summary.txt", "correlations.csv", "rank_correlation.png"}
  assert all(p.stat().st_size > 0 for p in written)
  calls = []
  monkeypatch.setattr(scoring, "score_fn", lambda *a, **k: calls.append(1))
  again = rank_correlation.run(c, tmp_path)  # everything is on disk: nothing to score
  assert not calls and again.table == result.table


@pytest.mark.slow
def test_deciles_run(tmp_path, tiny):
  c = tiny(deciles_config.get_config("small"))
  c.per_decile, c.num_seeds = 3, 2
  result = deciles.run(c, tmp_path)
  assert {r.decile for r in result.rows} == set(deciles.LABELS)
  totals = [r.correlation for r in result.rows if r.decile == "Total" and r.correlation.subset == "all"
            and r.correlation.metric == "lga_eval"]
  assert [r.n for r in totals] == [30, 30]
  scored = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert len(scored) == len({r["arch"] for r in scored}) <= 60
  assert (launch.write_outputs(result, tmp_path)[-1]).name == "deciles.png"


@pytest.mark.slow
def test_init_schemes_run(tmp_path, tiny):
  c = tiny(init_config.get_config("small"))
  c.space.num_archs, c.schemes = 4, ("xavier", "kaiming")
  result = init_schemes.run(c, tmp_path)
  assert {r.init for r in result.rows} == {"xavier", "kaiming"}
  x = list(csv.DictReader(open(tmp_path / "results_xavier.csv")))
  k = list(csv.DictReader(open(tmp_path / "results_kaiming.csv")))
  assert [r["arch"] for r in x] == [r["arch"] for r in k]
  assert any(r1["fnorm_eval"] != r2["fnorm_eval"] for r1, r2 in zip(x, k))  # the scheme matters
  assert "Kendall tau by init scheme" in result.summary()


def test_missing_ground_truth_and_bad_sampling(tmp_path, tiny):
  c = tiny(rc_config.get_config("small"))
  c.ground_truth.update(path=None, table=None)
  with pytest.raises(ValueError, match="needs a ground truth"):
    rank_correlation.run(c, tmp_path / "a")
  c = tiny(rc_config.get_config("small"))
  c.space.sampling = "best_first"
  with pytest.raises(ValueError, match="'best_first'"):
    rank_correlation.run(c, tmp_path / "b")


@pytest.mark.slow
def test_rank_correlation_runs_on_nb101_by_config_alone(tmp_path, tiny, shared_data):
  shared_data("nasbench101/nb101_nasbench_vis_1k.json")
  c = tiny(rc_config.get_config("small,nb101"))
  c.space.num_archs = 4
  result = rank_correlation.run(c, tmp_path)
  archs = (tmp_path / "archs.txt").read_text().split()
  assert len(archs) == 4 and all(len(a) == 32 for a in archs)  # NB101 graph hashes
  assert {"lga_eval", "ncn_train", "params", "random"} <= {r.metric for r in result.table if r.subset == "all"}
  assert all(r.n == 4 and r.n_degenerate == 0 for r in result.table if r.subset == "all")
  assert result.summary().startswith("nb101") and "params over all 1000 archs" in result.summary()


def test_init_and_data_seeds_redraw_one_thing_and_keep_the_others(tmp_path, tiny):
  import jax

  def drawn(**seeds):
    c = tiny(score_config.get_config("small"))
    c.space.init_seed, c.data.seed = seeds.get("init"), seeds.get("data")
    with setup.prepare(c, tmp_path / str(seeds)) as job:
      return jax.random.key_data(job.k_init), jax.random.key_data(job.k_arch), job.labels, job.images
  base, same, init, data = drawn(), drawn(init=0, data=0), drawn(init=5), drawn(data=5)
  for a, b in zip(base, same):  # each seed equal to seed changes nothing
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(init[0], base[0]) and np.array_equal(init[1], base[1])
  np.testing.assert_array_equal(init[3], base[3])
  assert not np.array_equal(data[3], base[3])
  np.testing.assert_array_equal(data[0], base[0])
  np.testing.assert_array_equal(data[1], base[1])
