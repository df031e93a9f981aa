"""ntkjax-reproduce: its config, the paper-against-ntkjax rows, and the
``small`` reproduction end to end on tiny networks, resumed."""

import csv
import math
import time

import pytest

from ntkjax import ranking
from ntkjax.configs import post_training as pt_config
from ntkjax.configs import rank_correlation as rc_config
from ntkjax.configs import reproduce as reproduce_config
from ntkjax.experiments import reproduce
from ntkjax.studies import plan, reproduction


def _tau_row(metric, tau, **extra):
  return {**ranking.CorrelationRow(metric, "all", 50, 0, 0, tau, 0.05, 0.01, 0.0, 0.0)._asdict(), **extra}


def test_config_runs_every_study_with_the_paper_codes_network_and_its_own_configs():
  c = reproduce_config.get_config("full")
  assert tuple(c.studies) == reproduce_config.STUDIES == tuple(reproduce.RUNS)
  for s in c.studies:
    assert c[s].space.variant == "paper_code" and c[s].metrics.compat == "paper_code"
  # each sub-config is the experiment's own config of the variant, proxies aside
  own = rc_config.get_config("full,paper_code")
  own.proxies = ()
  assert c.rank_correlation.to_dict() == own.to_dict()
  assert c.post_training.to_dict() == pt_config.get_config("full,paper_code").to_dict()
  assert (c.rank_correlation.space.num_archs, c.rank_correlation.data.batch_size) == (1000, 256)
  assert tuple(c.search.methods) == ("rs", "rea")
  with pytest.raises(ValueError, match="CIFAR-10 numbers, not 'imagenet16'"):
    reproduce_config.get_config("full,imagenet16")
  with pytest.raises(ValueError, match="nb101"):
    reproduce_config.get_config("nb101")


def test_one_memory_budget_serves_every_study_unless_a_study_sets_its_own():
  c = reproduce_config.get_config("full")
  assert all(reproduce.study_config(c, s) is c[s] for s in c.studies)  # no budget: the studies' own configs
  c.ntk.memory_budget_gib = 14.4
  c.search.ntk.memory_budget_gib = 7.0
  budgets = {s: reproduce.study_config(c, s).ntk.memory_budget_gib for s in c.studies}
  assert budgets == {**{s: 14.4 for s in c.studies}, "search": 7.0}
  assert c.rank_correlation.ntk.memory_budget_gib is None  # applied to a copy
  c.ntk.memory_budget_gib = -1.0
  with pytest.raises(ValueError, match=r"ntk.memory_budget_gib = -1.0 is out of range"):
    reproduce.run(c, "/nonexistent")


def test_unknown_study_is_an_error_naming_it(tmp_path):
  c = reproduce_config.get_config("small")
  c.studies = ("rank_correlation", "figure9")
  with pytest.raises(ValueError, match="figure9"):
    reproduce.run(c, tmp_path)


def test_comparisons_pair_each_number_with_the_papers():
  rc = reproduction.comparisons("rank_correlation", {"correlations.csv": (
      [_tau_row("ncn_eval", 0.5), _tau_row("params", 0.56), {**_tau_row("ncn_eval", 0.4), "subset": "non_degenerate"}],
      ranking.TABLE_FIELDS)})
  assert [(c.quantity, c.paper, c.ntkjax, c.spread, c.n) for c in rc] == [
      ("ncn_eval: Kendall tau", reproduction.PLOT, 0.5, 0.05, 50), ("params: Kendall tau", None, 0.56, 0.05, 50)]
  deciles = reproduction.comparisons("deciles", {"deciles.csv": (
      [_tau_row("lga_eval", t, seed=s, decile="3") for s, t in enumerate((0.1, 0.3, 0.2))], [])})
  assert len(deciles) == 1 and deciles[0].ntkjax == pytest.approx(0.2) and deciles[0].n == 3
  search = reproduction.comparisons("search", {"search_table.csv": ([{
      "method": "rea", "scorer": "lga_eval@3", "seeds": 5, "accuracy_mean": 94.1, "accuracy_std": 0.2,
      "cost_s_mean": 3500.0}], [])})
  assert [(c.quantity, c.paper, c.ntkjax) for c in search] == [
      ("rea + lga_eval@3: accuracy", 94.30, 94.1), ("rea + lga_eval@3: cost (s)", 3600.0, 3500.0)]
  with pytest.raises(ValueError, match="figure9"):
    reproduction.comparisons("figure9", {})


def test_result_lists_the_papers_printed_numbers_the_run_did_not_produce():
  class Search:
    def tables(self):
      return {"search_table.csv": ([{"method": "rs", "scorer": "lga_eval@1", "seeds": 2, "accuracy_mean": 91.0,
                                     "accuracy_std": 0.5, "cost_s_mean": 200.0}], [])}
  result = reproduction.ReproductionResult.gather("tiny", {"search": Search()})
  printed = {q for (section, q) in reproduction.PAPER if section == "Table 2"}
  not_run = {c.quantity for c in result.rows if c.ntkjax is None}
  assert not_run == printed
  text = result.summary()
  assert "rs + lga_eval@1: accuracy" in text and "not run" in text and "94.3" in text
  rows, fields = result.tables()["paper_vs_ntkjax.csv"]
  assert len(rows) == len(result.rows) and list(rows[0]) == fields


@pytest.mark.slow
def test_plan_measures_functions_shared_by_studies_once(tiny, monkeypatch):
  c = reproduce_config.get_config("small")
  c.studies = ("rank_correlation", "init_schemes", "post_training")
  for s in c.studies:
    tiny(c[s])
  c.init_schemes.bn_modes = tuple(c.rank_correlation.bn_modes)
  measured = []
  real = plan._measure
  monkeypatch.setattr(plan, "_measure", lambda name, *a: measured.append(name) or real(name, *a))
  p = reproduce.plan_reproduction(c)
  # init_schemes and post_training compile rank_correlation's kernels again (another init is the same
  # executable); only post_training's SGD step is new
  assert measured == ["kernels (train, eval BN)", "SGD step (batch 32)"]
  rc, schemes, post = p.plans
  assert [f.name for f in rc.functions] == ["init", "kernels (train, eval BN)"]
  assert schemes.functions[1].compile_s == rc.functions[1].compile_s
  n_schemes = len(c.init_schemes.schemes)  # a network per scheme: each compiles again
  assert schemes.functions[1].calls == n_schemes * c.init_schemes.space.num_archs
  assert schemes.functions[1].compiles == n_schemes and schemes.functions[0].calls == n_schemes
  assert p.projected_s == pytest.approx(sum(x.projected_s for x in p.plans))
  assert "projected wall time of the reproduction" in p.summary()


def test_a_refused_study_keeps_the_plans_of_the_studies_before_it(monkeypatch):
  c = reproduce_config.get_config("small")
  c.studies = ("rank_correlation", "post_training", "search")
  done = plan.StudyPlan("rank_correlation", "cpu", 1 << 30, "net", "arch", [], 12.0, None)
  partial = done._replace(study="post_training", refused=True)

  def fake_plan(config, study, cache):
    if study == "post_training":
      raise plan.DoesNotFit("post_training: SGD step: too big", partial)
    assert study == "rank_correlation", study  # nothing is planned after the refusal
    return done
  monkeypatch.setattr(plan, "plan", fake_plan)
  with pytest.raises(plan.DoesNotFit, match="post_training: SGD step: too big") as refused:
    reproduce.plan_reproduction(c)
  assert refused.value.measured.plans == [done, partial]
  text = refused.value.measured.summary()
  assert "plan of rank_correlation" in text and "no projection: the config does not fit" in text
  assert "projected wall time of the reproduction" not in text


@pytest.mark.slow
def test_small_reproduction_end_to_end_then_resumes_without_recomputing(tmp_path, tiny, capsys, monkeypatch):
  planned = []

  class Plan:
    def summary(self):
      return "projected wall time of the reproduction: 0.01 h"
  monkeypatch.setattr(reproduce, "plan_reproduction", lambda c: planned.append(c) or Plan())
  c = reproduce_config.get_config("small")
  for s in c.studies:
    tiny(c[s])
  c.deciles.per_decile, c.deciles.num_seeds = 1, 2
  c.init_schemes.space.num_archs = c.rank_correlation.space.num_archs = 6
  c.init_schemes.schemes = ("xavier", "torch_default")
  c.post_training.space.num_archs, c.post_training.epochs = 4, (1,)
  c.search.num_seeds, c.search.rs.num_archs, c.search.rea.population_size, c.search.rea.max_evals = 1, 4, 2, 5
  result = reproduce.run(c, tmp_path)
  printed = capsys.readouterr().out
  assert "projected wall time of the reproduction" in printed and (tmp_path / "plan.txt").exists()
  assert planned == [c]
  for s in c.studies:
    assert (tmp_path / s / "summary.txt").exists(), s
  sections = {r.section for r in result.rows}
  assert sections == set(reproduction.SECTIONS.values())
  produced = [r for r in result.rows if r.ntkjax is not None]
  assert any(r.quantity == "lga_eval: Kendall tau" and r.paper == reproduction.PLOT for r in produced)
  assert any(r.quantity == "lga_eval@1: Kendall tau" for r in produced)
  assert any(r.quantity == "rea + lga_eval@1: accuracy" and 0 < r.ntkjax <= 100 for r in produced)
  assert all(r.ntkjax is None for r in result.rows if r.paper is not None and not isinstance(r.paper, str))
  with open(tmp_path / "rank_correlation" / "results.csv") as f:
    scored = list(csv.DictReader(f))
  assert len(scored) == 6

  start = time.perf_counter()
  again = reproduce.run(c, tmp_path)
  assert "projected wall time" not in capsys.readouterr().out  # the plan is printed once, on a fresh run
  assert time.perf_counter() - start < 60
  same = {(r.section, r.quantity): r.ntkjax for r in result.rows}
  for r in again.rows:
    if r.ntkjax is not None and "cost" not in r.quantity:
      assert math.isclose(r.ntkjax, same[(r.section, r.quantity)], rel_tol=1e-9) or (
          math.isnan(r.ntkjax) and math.isnan(same[(r.section, r.quantity)])), r
  with open(tmp_path / "rank_correlation" / "results.csv") as f:
    assert list(csv.DictReader(f)) == scored
