"""Section 5 / Table 2: random search and regularized evolution with each
scorer in ``config.scorers`` over ``config.num_seeds`` seeds, in any space.

Each (method, scorer, seed) keeps a history CSV (every evaluation as it
happens; a rerun replays it and resumes) and adds a row to ``runs.csv`` when
it ends. Each scorer's scores are memoised across its searches in
``scores/`` (``search.ScoreMemo``: the measured cost is still charged to every
search that asks).

Speed-up: scoring an arch costs ``t·e + m`` (t epochs, then the metrics)
where training it for ``config.baseline_epochs`` (200, NB201's schedule)
costs ``200·e``; ``e`` and ``m`` are measured back to back on the same archs,
data and device (``unit_costs``), so the ratio does not depend on what else
ran while the searches' own costs were charged. The oracle and params get
none.
"""

from __future__ import annotations

import json
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from ntkjax import data as data_lib
from ntkjax import proxies, scoring, search, train, xla_options
from ntkjax.ground_truth import GroundTruth
from ntkjax.results import ResultsCSV
from ntkjax.spaces import api
from ntkjax.studies import setup

__all__ = ["SearchStudyResult", "make_scorer", "unit_costs", "run"]


def _pool(config, job: setup.Job, train_data, bn: str, epochs: int) -> api.Instantiator:
  """Per-network jitted metrics in BN mode ``bn`` (``score``) and, for
  trained scorers, epoch functions."""
  factories = {"score": lambda net: scoring.score_fn(net, bn_modes=(bn,), compat=config.metrics.compat,
                                                     **setup.ntk_options(config))}
  if epochs:
    factories["epoch"] = lambda net: train.make_epoch(
        net, setup.optimizer(config), batch_size=config.train.batch_size, mean=train_data.mean,
        std=train_data.std, padding=train.default_padding(train_data.image_size),
        memory_budget=setup.ntk_options(config)["memory_budget"])
  return api.Instantiator(job.space, job.k_init, jnp.asarray(job.images[:1]), factories,
                          init_per_arch=config.space.init_per_arch, clear_caches=config.space.clear_caches)


def make_scorer(spec: search.ScorerSpec, config: ml_collections.ConfigDict, job: setup.Job,
                train_data: data_lib.Dataset | None, key: jax.Array) -> Callable[[str], object]:
  """The scorer ``spec`` names: the ground truth (``oracle``), the parameter
  count, or a metric after t epochs (archs initialised as
  ``spaces.api.Instantiator`` does with ``space.index``; training with
  ``fold_in(key, space.index(arch))``, so an arch always gets the same
  score)."""
  truth = setup.require_truth(job)
  space = job.space
  if spec.name == "oracle":
    return lambda arch: (truth[arch], 0.0)
  if spec.name == "params":
    return lambda arch: float(space.num_params(arch))
  x, y = jnp.asarray(job.images), jnp.asarray(job.labels)
  if spec.proxy:
    return _proxy_scorer(spec.name, config, job, x, y)
  pool = _pool(config, job, train_data, spec.key.bn, spec.epochs)

  def scorer(arch):
    inst = pool.get(arch, space.index(arch))
    v = inst.variables
    if spec.epochs:
      v, _ = train.train(inst.candidate.net, v, inst.args, train_data, spec.epochs,
                         jax.random.fold_in(key, space.index(arch)), tx=setup.optimizer(config),
                         batch_size=config.train.batch_size, epoch_fn=inst.fns["epoch"])
    value = float(inst.fns["score"](v, x, y, *inst.args)[spec.key.column])
    pool.release(inst)
    return value
  return scorer


def _proxy_scorer(name: str, config, job: setup.Job, x, y) -> Callable[[str], float]:
  """A zero-cost proxy at init (``nwot``: NASWOT), keyed as scoring keys it."""
  fn = lambda net: xla_options.jit(proxies.proxies_fn(net, [name], num_classes=job.num_classes))
  pool = api.Instantiator(job.space, job.k_init, x[:1], {"proxy": fn}, init_per_arch=config.space.init_per_arch,
                          clear_caches=config.space.clear_caches)
  k_proxies = scoring.proxy_key(job.k_init)

  def scorer(arch):
    i = job.space.index(arch)
    inst = pool.get(arch, i)
    value = float(inst.fns["proxy"](inst.variables, x, y, jax.random.fold_in(k_proxies, i), *inst.args)[name])
    pool.release(inst)
    return value
  return scorer


def unit_costs(config: ml_collections.ConfigDict, job: setup.Job, train_data: data_lib.Dataset, key: jax.Array,
               path=None, *, num_archs: int = 5) -> search.UnitCosts:
  """Steady seconds of one training epoch and of each BN mode's metrics,
  measured back to back on the same ``num_archs`` random non-degenerate archs
  of the space, compilation excluded (a network's first call is not timed;
  NB201's archs share one). Kept in ``path`` (JSON)."""
  if path is not None and path.exists():
    return search.UnitCosts(**json.loads(path.read_text()))
  space = job.space
  archs = [a for a in space.sample(jax.random.fold_in(key, 7), 4 * num_archs)
           if not space.is_degenerate(a)][:num_archs]
  x, y = jnp.asarray(job.images), jnp.asarray(job.labels)

  def mean_seconds(pool, fn):
    times, warm = [], set()
    for a in archs:
      inst = pool.get(a, space.index(a))
      if inst.candidate.cache_key not in warm:
        jax.block_until_ready(fn(inst))  # compile
        warm.add(inst.candidate.cache_key)
      t = time.perf_counter()
      jax.block_until_ready(fn(inst))
      times.append(time.perf_counter() - t)
      pool.release(inst)
      if not space.shares_compilation:
        warm.clear()
    return float(np.mean(times))
  train_pool = _pool(config, job, train_data, "eval", 1)
  epoch_s = mean_seconds(train_pool, lambda inst: train.train(
      inst.candidate.net, inst.variables, inst.args, train_data, 1, key, tx=setup.optimizer(config),
      batch_size=config.train.batch_size, epoch_fn=inst.fns["epoch"])[0])
  metric_s = {}
  for bn in scoring.BN_MODES:
    pool = _pool(config, job, train_data, bn, 0)
    metric_s[bn] = mean_seconds(pool, lambda inst: inst.fns["score"](inst.variables, x, y, *inst.args))
  costs = search.UnitCosts(epoch_s, metric_s, archs, len(train_data.labels), config.train.batch_size)
  if path is not None:
    path.write_text(json.dumps(costs._asdict(), indent=1))
  return costs


class SearchStudyResult(NamedTuple):
  space: str
  truth: GroundTruth
  runs: list[dict]                  # the runs.csv rows
  table: list[search.RunSummary]
  costs: search.UnitCosts
  baseline_epochs: int

  def summary(self) -> str:
    t, c = self.truth, self.costs
    head = (f"Search on {self.space}, ground truth {t.dataset}/{t.split} (optimum {max(t.accuracy.values()):.2f}); "
            f"speed-up = {self.baseline_epochs}·e/(t·e + m) with e = {c.epoch_s:.2f} s/epoch, "
            f"m = {c.metric_s['train']:.2f} s (train BN) / {c.metric_s['eval']:.2f} s (eval BN)")
    lines = [head, f"{'method':<7}{'scorer':<16}{'seeds':>6}{'accuracy':>18}{'cost (s)':>12}{'evals':>8}"
                   f"{'speed-up':>11}"]
    for r in self.table:
      up = "—" if math.isinf(r.speed_up) or math.isnan(r.speed_up) else f"{r.speed_up:.0f}×"
      lines.append(f"{r.method:<7}{r.scorer:<16}{r.seeds:>6}{r.accuracy_mean:>11.2f} ± {r.accuracy_std:<5.2f}"
                   f"{r.cost_s_mean:>12.1f}{r.evaluations_mean:>8.0f}{up:>11}")
    return "\n".join(lines)

  def tables(self):
    return {"search_table.csv": ([r._asdict() for r in self.table], list(search.RunSummary._fields))}

  def figures(self):
    return {}


METHODS = ("rs", "rea", "knas")
KNAS_SCORER = "mean_train@0"  # KNAS ranks by the NTK's mean at init


def _runs(config, spec: search.ScorerSpec) -> list[tuple[str, int | None]]:
  """(method, KNAS k) of every search a scorer takes part in: KNAS only with
  its own scorer, once per k in ``knas.ks``."""
  out = []
  for method in config.methods:
    if method != "knas":
      out.append((method, None))
    elif spec.name == KNAS_SCORER:
      out += [(method, k) for k in config.knas.ks]
  return out


def run(config: ml_collections.ConfigDict, workdir) -> SearchStudyResult:
  specs = [search.ScorerSpec.parse(s) for s in config.scorers]
  bad = [m for m in config.methods if m not in METHODS]
  if bad:
    raise ValueError(f"unknown search method {bad[0]!r}; use one of {', '.join(METHODS)}")
  with setup.prepare(config, workdir) as job:
    truth = setup.require_truth(job)
    train_data, k_train = setup.training(config, job)
    space = job.space
    runs = ResultsCSV(job.workdir / "runs.csv", search.RUN_FIELDS, key="run")
    (job.workdir / "scores").mkdir(exist_ok=True)
    (job.workdir / "histories").mkdir(exist_ok=True)
    budget = config.budget_s or math.inf
    costs = None
    if "knas" in config.methods:  # KNAS charges a benchmark query as training the arch
      costs = unit_costs(config, job, train_data, k_train, job.workdir / "unit_costs.json",
                         num_archs=config.unit_cost_archs)
    for spec in specs:
      scorer = search.ScoreMemo(make_scorer(spec, config, job, train_data, k_train),
                                job.workdir / "scores" / f"{spec.slug}.csv")
      compile_s = None
      for seed in range(config.num_seeds):
        for method, k in _runs(config, spec):
          run_id = f"{method}{k or ''}|{spec.name}|{seed}"
          if run_id in runs.done:
            continue
          if compile_s is None:  # compile outside the charged cost, once per scorer
            compile_s = ""       # a network per graph: each arch's compilation is part of its cost
            if space.shares_compilation:
              t0 = time.perf_counter()
              scorer.score(space.sample(jax.random.fold_in(job.k_arch, 10_000), 1)[0])
              compile_s = f"{time.perf_counter() - t0:.2f}"
          key = jax.random.fold_in(job.k_arch, seed)
          history = job.workdir / "histories" / f"{'rs' if method == 'knas' else method}_{spec.slug}_seed{seed}.csv"
          if method == "rs":
            res = search.random_search(scorer, key, space=space, num_archs=config.rs.num_archs, budget_s=budget,
                                       history_path=history)
          elif method == "knas":
            res = search.knas(scorer, key, space=space, accuracy=lambda a: truth[a],
                              query_cost_s=config.baseline_epochs * costs.epoch_s, num_archs=config.rs.num_archs,
                              k=k, history_path=history)
          else:
            res = search.regularized_evolution(scorer, key, space=space, population_size=config.rea.population_size,
                                               sample_size=config.rea.sample_size, budget_s=budget,
                                               max_evals=config.rea.max_evals, history_path=history)
          trained = len({e.arch for e in res.history if not space.is_degenerate(e.arch)})
          runs.append({"run": run_id, "method": f"{method}{k or ''}", "scorer": spec.name, "seed": seed,
                       "best_arch": res.best_arch, "best_score": repr(res.best_score),
                       "accuracy": repr(truth[res.best_arch]), "cost_s": f"{res.cost_s:.3f}",
                       "evaluations": len(res.history), "trained": trained, "compile_s": compile_s})
          logging.info("%s: %s acc %.2f cost %.1fs", run_id, res.best_arch, truth[res.best_arch], res.cost_s)
    costs = costs or unit_costs(config, job, train_data, k_train, job.workdir / "unit_costs.json",
                                num_archs=config.unit_cost_archs)
    ups = {s.name: search.speed_up(s, costs, config.baseline_epochs) for s in specs}
    table = search.summarize_runs(runs.rows, optimum=max(truth.accuracy.values()), speed_ups=ups)
    return SearchStudyResult(space.name, truth, list(runs.rows), table, costs, config.baseline_epochs)
