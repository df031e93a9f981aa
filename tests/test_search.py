"""Random search and regularized evolution with cheap scorers."""

import math

import jax
import numpy as np
import pytest

from ntkjax import ground_truth, search
from ntkjax.spaces import api, nb201

V1X = "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv"


SPACE = api.NB201Space()


def params_score(arch):
  return float(nb201.num_params(arch)), 1.0  # deterministic unit cost


def test_same_key_same_history_and_different_key_differs():
  a = search.regularized_evolution(params_score, jax.random.key(0), space=SPACE, max_evals=40)
  b = search.regularized_evolution(params_score, jax.random.key(0), space=SPACE, max_evals=40)
  c = search.regularized_evolution(params_score, jax.random.key(1), space=SPACE, max_evals=40)
  assert a.history == b.history and len(a.history) == 40
  assert [e.arch for e in a.history] != [e.arch for e in c.history]


def test_rea_respects_the_budget_and_mutates_one_edge():
  res = search.regularized_evolution(params_score, jax.random.key(3), space=SPACE, population_size=5,
                                     budget_s=30.5)
  charged = [e.cost_s for e in res.history]
  assert res.cost_s == pytest.approx(sum(charged))
  assert res.cost_s - charged[-1] < 30.5 <= res.cost_s  # stops once the budget is reached
  archs = [e.arch for e in res.history]
  for i in range(5, len(archs)):
    nb201.validate(archs[i])
    parents = archs[i - 5:i]  # the population when the child was made
    assert any((nb201.decode(archs[i]) != nb201.decode(p)).sum() == 1 for p in parents)
  assert res.best_score == max(e.score for e in res.history)


def test_rea_climbs_params_and_tournament_variant():
  res = search.regularized_evolution(params_score, jax.random.key(4), space=SPACE, max_evals=200, sample_size=3)
  first = max(e.score for e in res.history[:10])
  assert res.best_score > first
  with pytest.raises(ValueError, match="sample_size 20"):
    search.regularized_evolution(params_score, jax.random.key(4), space=SPACE, max_evals=5, sample_size=20)
  with pytest.raises(ValueError, match="finite budget_s or max_evals"):
    search.regularized_evolution(params_score, jax.random.key(4), space=SPACE)


def test_degenerate_archs_are_never_scored_or_chosen():
  calls = []

  def smallest(arch):  # degenerate nets are the smallest: this scorer would love them
    calls.append(arch)
    return -float(nb201.num_params(arch)), 1.0
  res = search.random_search(smallest, jax.random.key(0), space=SPACE, num_archs=2000)
  degenerate = [e for e in res.history if nb201.is_degenerate(e.arch)]
  assert degenerate and all(e.score == -math.inf and e.cost_s == 0 for e in degenerate)
  assert not any(nb201.is_degenerate(a) for a in calls)
  assert not nb201.is_degenerate(res.best_arch)
  nan = search.random_search(lambda a: (float("nan"), 0.0), jax.random.key(0), space=SPACE, num_archs=3)
  assert all(e.score == -math.inf for e in nan.history)


def test_random_search_picks_the_best_of_distinct_samples_within_budget():
  res = search.random_search(params_score, jax.random.key(2), space=SPACE, num_archs=50)
  archs = [e.arch for e in res.history]
  assert len(set(archs)) == 50
  assert res.best_score == max(nb201.num_params(a) for a in archs)
  short = search.random_search(params_score, jax.random.key(2), space=SPACE, num_archs=50, budget_s=7)
  assert len(short.history) == 7 and short.history == res.history[:7]


def test_cache_charges_revisits_nothing():
  calls = []

  def counted(arch):
    calls.append(arch)
    return float(nb201.num_params(arch)), 2.0
  res = search.regularized_evolution(counted, jax.random.key(5), space=SPACE, population_size=3,
                                     max_evals=150)
  revisits = [e for e in res.history if e.cached]
  assert revisits and all(e.cost_s == 0 for e in revisits)
  fresh_degenerate = [e for e in res.history if not e.cached and nb201.is_degenerate(e.arch)]
  assert len(calls) == len(set(calls)) == len(res.history) - len(revisits) - len(fresh_degenerate)
  calls.clear()
  again = search.regularized_evolution(counted, jax.random.key(5), space=SPACE, population_size=3, max_evals=150,
                                       cache=False)
  assert len(calls) == 150 - sum(nb201.is_degenerate(e.arch) for e in again.history)


class Interrupted(Exception):
  pass


def test_interrupted_search_resumes_from_its_history(tmp_path):
  full = search.regularized_evolution(params_score, jax.random.key(6), space=SPACE, max_evals=30)
  calls = []

  def flaky(arch):
    calls.append(arch)
    if len(calls) == 17:
      raise Interrupted
    return params_score(arch)
  path = tmp_path / "history.csv"
  with pytest.raises(Interrupted):
    search.regularized_evolution(flaky, jax.random.key(6), space=SPACE, max_evals=30, history_path=path)
  calls.clear()
  resumed = search.regularized_evolution(lambda a: calls.append(a) or params_score(a),
                                         jax.random.key(6), space=SPACE, max_evals=30, history_path=path)
  assert [e.arch for e in resumed.history] == [e.arch for e in full.history]
  assert resumed.best_arch == full.best_arch and resumed.cost_s == full.cost_s
  assert len(calls) < 30 - 10  # only the steps after the interruption were scored
  with pytest.raises(ValueError, match="different key"):
    search.regularized_evolution(params_score, jax.random.key(7), space=SPACE, max_evals=30, history_path=path)


def test_score_memo_replays_score_and_measured_cost(tmp_path):
  calls = []

  def score(arch):
    calls.append(arch)
    return float(len(calls)), 2.5

  memo = search.ScoreMemo(score, tmp_path / "m.csv")
  a, b = nb201.all_archs()[100], nb201.all_archs()[200]
  assert memo(a) == (1.0, 2.5) and memo(b) == (2.0, 2.5) and memo(a) == (1.0, 2.5)
  assert calls == [a, b]
  again = search.ScoreMemo(score, tmp_path / "m.csv")  # from disk: nothing rescored
  assert again(b) == (2.0, 2.5) and calls == [a, b]
  # Two searches through one memo each pay the full cost of what they score.
  r1 = search.random_search(again, jax.random.key(0), space=SPACE, num_archs=5)
  r2 = search.random_search(again, jax.random.key(0), space=SPACE, num_archs=5)
  assert r1.cost_s == r2.cost_s == 2.5 * sum(not nb201.is_degenerate(e.arch) for e in r1.history)


def test_scorer_names_parse():
  spec = search.ScorerSpec.parse("lga_eval@3")
  assert (spec.key.metric, spec.key.bn, spec.epochs, spec.slug) == ("lga", "eval", 3, "lga_eval_at3")
  assert search.ScorerSpec.parse("oracle").key is None
  for bad in ("lga@3", "lga_eval", "lga_eval@x", "lga_test@1"):
    with pytest.raises(ValueError, match=f"unknown scorer '{bad}'"):
      search.ScorerSpec.parse(bad)


def test_speed_up_is_the_training_baseline_over_the_scoring_cost():
  costs = search.UnitCosts(2.0, {"train": 1.0, "eval": 0.5}, [], 0, 0)
  parse = search.ScorerSpec.parse
  assert search.speed_up(parse("lga_eval@3"), costs) == 200 * 2.0 / (3 * 2.0 + 0.5)
  assert search.speed_up(parse("fnorm_train@0"), costs, baseline_epochs=100) == 100 * 2.0 / 1.0
  assert search.speed_up(parse("oracle"), costs) == search.speed_up(parse("params"), costs) == math.inf
  rows = [{"method": "rs", "scorer": "s", "accuracy": "90", "cost_s": "50", "evaluations": "12", "trained": "10"},
          {"method": "rs", "scorer": "s", "accuracy": "92", "cost_s": "100", "evaluations": "12", "trained": "10"}]
  table = search.summarize_runs(rows, optimum=94.0, speed_ups={"s": 42.0})
  assert table[0].speed_up == 42.0 and table[0].accuracy_mean == 91 and table[0].gap_to_optimum == 3
  assert table[0].cost_s_mean == 75


def test_oracle_rea_beats_oracle_random_search_on_nb201(shared_data):
  truth = ground_truth.read_csv(shared_data(V1X), arch_column="cellstr", accuracy_column="valid_test_top1")
  oracle = lambda a: (truth[a], 1.0)  # noqa: E731
  rea = [search.regularized_evolution(oracle, jax.random.key(s), space=SPACE, max_evals=150).best_score
         for s in range(5)]
  rs = [search.random_search(oracle, jax.random.key(s), space=SPACE, num_archs=150).best_score for s in range(5)]
  assert np.mean(rea) >= np.mean(rs) and np.mean(rea) > 90.5


def test_knas_queries_the_top_k_by_score_and_charges_each_query():
  accuracy = lambda arch: -float(nb201.ops_to_index(arch) % 97)  # unrelated to params
  res = {k: search.knas(params_score, jax.random.key(5), space=SPACE, accuracy=accuracy, query_cost_s=100.0,
                        num_archs=20, k=k) for k in (1, 3)}
  ranked = sorted(res[3].history, key=lambda e: -e.score)
  top3 = [e.arch for e in ranked[:3]]
  assert res[3].best_arch == max(top3, key=accuracy) and res[3].best_score == accuracy(res[3].best_arch)
  assert res[1].best_arch == ranked[0].arch
  assert res[3].cost_s == pytest.approx(len(res[3].history) * 1.0 + 3 * 100.0)
  with pytest.raises(ValueError, match="k >= 1, got 0"):
    search.knas(params_score, jax.random.key(5), space=SPACE, accuracy=accuracy, query_cost_s=1.0, k=0)


def test_a_proxy_is_a_scorer_and_a_typo_lists_the_proxies():
  spec = search.ScorerSpec.parse("nwot")
  assert spec.proxy and spec.epochs == 0 and math.isnan(search.speed_up(spec, None))
  with pytest.raises(ValueError, match="a proxy \\(synflow, snip"):
    search.ScorerSpec.parse("nwat")
