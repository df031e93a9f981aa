"""Architecture search in any space guided by any score (paper Section 5).

* ``random_search`` (Algorithm 1): score ``num_archs`` distinct random
  architectures and keep the best.
* ``regularized_evolution`` (Algorithm 2, Real et al.): a population (10 in
  the paper); each step the best member (or the best of a random
  ``sample_size`` subset, classic REA) is the parent, its child is the
  space's mutation (NB201: one op on one edge), the child is pushed and the oldest member popped, until
  the cost budget or ``max_evals`` is reached.

A scorer is ``score(arch) -> float`` or ``-> (float, cost_seconds)``: LGA
after t epochs, an at-init metric, the parameter count, or the benchmark's
accuracy as an oracle. Without a reported cost the wall time of the call is
charged (the scorer must return host floats, so the time includes the
device work). Degenerate architectures are never scored: they get -inf at
no cost, so they are never chosen.

Every evaluation is appended to a history CSV as it happens. A rerun with
the same key replays the history instead of re-scoring, so an interrupted
search resumes exactly and an audit can recompute every decision.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkjax import correlation, post_training
from ntkjax import score as score_lib
from ntkjax import train as train_lib
from ntkjax.results import ResultsCSV
from ntkjax.spaces import api, nb201

__all__ = ["Evaluation", "SearchResult", "Evaluator", "ScoreMemo", "random_search", "regularized_evolution",
           "make_scorer", "unit_costs", "speed_up", "run_search", "summarize_runs"]

HISTORY_FIELDS = ["step", "arch", "score", "cost_s", "total_cost_s", "cached"]


class Evaluation(NamedTuple):
  step: int
  arch: str
  score: float
  cost_s: float
  total_cost_s: float
  cached: bool


class SearchResult(NamedTuple):
  best_arch: str
  best_score: float
  cost_s: float                 # total charged cost of the search
  history: list[Evaluation]


class Evaluator:
  """Scores architectures, charges their cost and logs every evaluation.

  ``cache=True`` scores an architecture once and charges nothing for a
  revisit (REA's mutations can return to an arch already trained); with
  ``cache=False`` every visit is scored and charged again, as a naive
  implementation would. ``is_degenerate`` (default NB201's) marks the archs
  that get -inf unscored.
  """

  def __init__(self, score: Callable, history_path=None, *, cache: bool = True,
               is_degenerate: Callable[[str], bool] = nb201.is_degenerate):
    self.score = score
    self.is_degenerate = is_degenerate
    self.cache = cache
    self.seen: dict[str, float] = {}
    self.history: list[Evaluation] = []
    self.total = 0.0
    self.table = ResultsCSV(history_path, HISTORY_FIELDS, key="step") if history_path else None
    self._replay = list(self.table.rows) if self.table else []

  def __call__(self, arch: str) -> float:
    step = len(self.history)
    if step < len(self._replay):  # resume: the same key reproduces the same requests
      r = self._replay[step]
      if r["arch"] != arch:
        raise ValueError(f"history step {step} holds {r['arch']} but the search asked for {arch}: "
                         "the history comes from a different key or config; use a new path")
      value, cost, cached = float(r["score"]), float(r["cost_s"]), bool(int(r["cached"]))
    else:
      cached = self.cache and arch in self.seen
      if cached:
        value, cost = self.seen[arch], 0.0
      elif self.is_degenerate(arch):
        value, cost = -math.inf, 0.0
      else:
        t = time.perf_counter()
        out = self.score(arch)
        value, cost = (float(out[0]), float(out[1])) if isinstance(out, tuple) else (float(out), time.perf_counter() - t)
      if math.isnan(value):
        value = -math.inf  # a NaN score never wins
    self.total += cost
    self.seen.setdefault(arch, value)
    ev = Evaluation(step, arch, value, cost, self.total, cached)
    self.history.append(ev)
    if self.table is not None and step >= len(self._replay):
      self.table.append({"step": step, "arch": arch, "score": repr(value), "cost_s": repr(cost),
                         "total_cost_s": repr(self.total), "cached": int(cached)})
    return value

  def result(self) -> SearchResult:
    if not self.history:
      raise ValueError("no architecture was evaluated (budget too small?)")
    best = max(self.history, key=lambda e: (e.score, -e.step))
    return SearchResult(best.arch, best.score, self.total, list(self.history))


class ScoreMemo:
  """A deterministic scorer's ``(score, measured cost)`` per arch, kept on disk.

  A trained score depends only on the arch (the training key is
  ``fold_in(key, arch index)``), so the searches of one study share its
  measurements: a repeat request returns the score *and charges the cost
  measured the first time*. The study's wall time shrinks; the cost each
  search reports does not. ``path`` (a CSV) survives interrupts.
  """

  FIELDS = ["arch", "score", "cost_s"]

  def __init__(self, score: Callable, path=None):
    self.score = score
    self.table = ResultsCSV(path, self.FIELDS) if path else None
    self.values = {r["arch"]: (float(r["score"]), float(r["cost_s"])) for r in self.table.rows} if path else {}

  def __call__(self, arch: str) -> tuple[float, float]:
    if arch not in self.values:
      t = time.perf_counter()
      out = self.score(arch)
      self.values[arch] = (float(out[0]), float(out[1])) if isinstance(out, tuple) else (
          float(out), time.perf_counter() - t)
      if self.table is not None:
        self.table.append({"arch": arch, "score": repr(self.values[arch][0]), "cost_s": repr(self.values[arch][1])})
    return self.values[arch]


def random_search(score: Callable, key: jax.Array, *, num_archs: int = 100,
                  budget_s: float = math.inf, history_path=None, cache: bool = True,
                  space=None) -> SearchResult:
  """Algorithm 1: the best of ``num_archs`` distinct random architectures of
  ``space`` (a ``spaces.api`` space; default NB201), fewer if the cost
  budget runs out first."""
  space = space or api.NB201Space()
  ev = Evaluator(score, history_path, cache=cache, is_degenerate=space.is_degenerate)
  for arch in space.sample(key, num_archs):
    if ev.total >= budget_s:
      break
    ev(arch)
  return ev.result()


def regularized_evolution(score: Callable, key: jax.Array, *, population_size: int = 10,
                          sample_size: int | None = None, budget_s: float = math.inf,
                          max_evals: int | None = None, history_path=None,
                          cache: bool = True, space=None) -> SearchResult:
  """Algorithm 2: regularized evolution in ``space`` (a ``spaces.api``
  space; default NB201) until ``budget_s`` or ``max_evals``.

  ``sample_size=None`` takes the best of the whole population as parent, as
  the paper's Algorithm 2; an integer gives Real et al.'s tournament.
  """
  space = space or api.NB201Space()
  if max_evals is None and math.isinf(budget_s):
    raise ValueError("regularized_evolution needs a finite budget_s or max_evals")
  if sample_size is not None and not 1 <= sample_size <= population_size:
    raise ValueError(f"sample_size {sample_size} must be in [1, population_size={population_size}]")
  ev = Evaluator(score, history_path, cache=cache, is_degenerate=space.is_degenerate)
  k_init, k_loop = jax.random.split(key)

  def spent():
    return ev.total >= budget_s or (max_evals is not None and len(ev.history) >= max_evals)

  population: list[tuple[str, float]] = []
  for arch in space.sample(k_init, population_size):
    if spent():
      break
    population.append((arch, ev(arch)))
  step = 0
  while population and not spent():
    k_sample, k_mutate = jax.random.split(jax.random.fold_in(k_loop, step))
    if sample_size is None:
      candidates = population
    else:
      pick = np.asarray(jax.random.choice(k_sample, len(population), (sample_size,), replace=False))
      candidates = [population[i] for i in sorted(pick)]
    parent = max(candidates, key=lambda p: p[1])[0]
    child = space.mutate(k_mutate, parent)
    population.append((child, ev(child)))
    population.pop(0)
    step += 1
  return ev.result()


# ----------------------------------------------------------------------------- the Section 5 study

def _pool(space, init_key, images, train_data, config, metric: str, t: int) -> api.Instantiator:
  """Per-network jitted metric (``score``) and, for t > 0, epoch functions."""
  bn = metric.rsplit("_", 1)[1]
  factories = {"score": lambda net: score_lib.score_fn(net, bn_modes=(bn,), compat=config.metrics.compat,
                                                       **score_lib.ntk_options(config))}
  if t:
    tx = train_lib.sgd(config.train.learning_rate, config.train.momentum, config.train.weight_decay)
    factories["epoch"] = lambda net: train_lib.make_epoch(
        net, tx, batch_size=config.train.batch_size, mean=train_data.mean, std=train_data.std,
        padding=train_lib.default_padding(train_data.image_size))
  return api.Instantiator(space, init_key, jnp.asarray(images[:1]), factories,
                          init_per_arch=config.space.init_per_arch)


def _trained_metric(pool, inst, metric, t, x, y, train_data, key, config):
  v = inst.variables
  if t:
    tx = train_lib.sgd(config.train.learning_rate, config.train.momentum, config.train.weight_decay)
    v, _ = train_lib.train(inst.candidate.net, v, inst.args, train_data, t,
                           jax.random.fold_in(key, pool.space.index(inst.arch)), tx=tx,
                           batch_size=config.train.batch_size, epoch_fn=inst.fns["epoch"])
  return float(inst.fns["score"](v, x, y, *inst.args)[metric])


def _parse_scorer(name: str) -> tuple[str, int]:
  metric, _, t = name.partition("@")
  if metric not in score_lib.metric_columns() or not t.isdigit():
    raise ValueError(f"unknown scorer {name!r}; use oracle, params or <metric>_<bn>@<t> with metric in "
                     f"{score_lib.metric_columns()}")
  return metric, int(t)


def make_scorer(name: str, *, space, init_key, images, labels, train_data, key, truth, config):
  """A scorer by name: ``oracle`` (the ground truth), ``params``, or
  ``<metric>_<bn>@<t>`` (e.g. ``lga_eval@3`` is LGA_3; ``@0`` is at init).

  Archs of ``space`` (a ``spaces.api`` space) are initialised as
  ``spaces.api.Instantiator`` does with ``init_key`` and ``space.index``
  (NB201's share one initialisation); training for ``@t`` with t > 0 uses
  ``fold_in(key, space.index(arch))``, so an arch always gets the same score.
  """
  if name == "oracle":
    return lambda arch: (truth[arch], 0.0)
  if name == "params":
    return lambda arch: float(space.num_params(arch))
  metric, t = _parse_scorer(name)
  # Only trained scorers need the training set (run_search loads it only for them).
  pool = _pool(space, init_key, images, train_data, config, metric, t)
  x, y = jnp.asarray(images), jnp.asarray(labels)

  def scorer(arch):
    inst = pool.get(arch, space.index(arch))
    value = _trained_metric(pool, inst, metric, t, x, y, train_data, key, config)
    pool.release(inst)
    return value
  return scorer


RUN_FIELDS = ["run", "method", "scorer", "seed", "best_arch", "best_score", "accuracy", "cost_s",
              "evaluations", "trained", "compile_s"]


def unit_costs(space, init_key, train_data, config, key, images, labels, path=None, *,
               num_archs: int = 5) -> dict:
  """Steady seconds of one training epoch and of each BN mode's metrics,
  measured back to back on the same ``num_archs`` random non-degenerate archs
  of ``space``, compilation excluded (a network's first call is not timed;
  NB201's archs share one): ``{'epoch_s': e, 'metric_s': {'train': m,
  'eval': m}}``. Kept in ``path``."""
  path = pathlib.Path(path) if path else None
  if path is not None and path.exists():
    return json.loads(path.read_text())
  archs = [a for a in space.sample(jax.random.fold_in(key, 7), 4 * num_archs)
           if not space.is_degenerate(a)][:num_archs]
  x, y = jnp.asarray(images), jnp.asarray(labels)

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
  train_pool = _pool(space, init_key, images, train_data, config, "lga_eval", 1)
  tx = train_lib.sgd(config.train.learning_rate, config.train.momentum, config.train.weight_decay)
  out = {"epoch_s": mean_seconds(train_pool, lambda inst: train_lib.train(
      inst.candidate.net, inst.variables, inst.args, train_data, 1, key, tx=tx,
      batch_size=config.train.batch_size, epoch_fn=inst.fns["epoch"])[0]),
         "metric_s": {}, "archs": archs, "num_images": len(train_data.labels),
         "batch_size": config.train.batch_size}
  for bn in score_lib.BN_MODES:
    pool = _pool(space, init_key, images, train_data, config, f"lga_{bn}", 0)
    out["metric_s"][bn] = mean_seconds(pool, lambda inst: inst.fns["score"](inst.variables, x, y, *inst.args))
  if path is not None:
    path.write_text(json.dumps(out, indent=1))
  return out


def speed_up(scorer: str, costs: Mapping, baseline_epochs: int = 200) -> float:
  """``baseline_epochs · e / (t · e + m)``: how many times cheaper scoring an
  arch with ``scorer`` is than training it for ``baseline_epochs``, from the
  unit costs ``e`` (epoch) and ``m`` (the scorer's metrics); inf for the
  oracle and params, which cost nothing measurable."""
  if scorer in ("oracle", "params"):
    return math.inf
  metric, _, t = scorer.partition("@")
  e, m = costs["epoch_s"], costs["metric_s"][metric.rsplit("_", 1)[1]]
  return baseline_epochs * e / (int(t) * e + m)


def run_search(config, workdir) -> list[dict]:
  """Section 5 / Table 2: RS and REA with each scorer over ``num_seeds`` seeds.

  Writes one history CSV per (method, scorer, seed), one row per finished
  search to ``runs.csv``, and the Table 2-style summary. The scores of each
  scorer are memoised across its searches in ``scores/`` (``ScoreMemo``:
  the measured cost is still charged to every search that asks).

  Speed-up: scoring an arch costs ``t·e + m`` (t epochs, then the metrics)
  where training it for ``config.baseline_epochs`` (200, NB201's schedule)
  costs ``200·e``; ``e`` and ``m`` are measured back to back on the same
  archs, data and device (``unit_costs``), so the ratio does not depend on
  what else ran while the search's own costs were charged. The oracle and
  params get none.
  """
  workdir = pathlib.Path(workdir)
  job = score_lib.prepare(config, workdir)
  truth = correlation.require_truth(job)
  k_data, k_train = jax.random.split(jax.random.fold_in(job.k_init, 1))
  train_data = post_training.training_data(config, k_data)
  space = job.space
  runs = ResultsCSV(workdir / "runs.csv", RUN_FIELDS, key="run")
  (workdir / "scores").mkdir(exist_ok=True)
  for scorer_name in config.scorers:
    slug = scorer_name.replace("@", "_at")
    scorer = ScoreMemo(make_scorer(scorer_name, space=space, init_key=job.k_init, images=job.images,
                                   labels=job.labels, train_data=train_data, key=k_train, truth=truth,
                                   config=config), workdir / "scores" / f"{slug}.csv")
    compile_s = None
    for seed in range(config.num_seeds):
      for method in config.methods:
        run_id = f"{method}|{scorer_name}|{seed}"
        if run_id in runs.done:
          continue
        if compile_s is None:  # compile outside the charged cost, once per scorer
          compile_s = ""     # a network per graph: each arch's compilation is part of its cost
          if space.shares_compilation:
            t0 = time.perf_counter()
            scorer.score(space.sample(jax.random.fold_in(job.k_arch, 10_000), 1)[0])
            compile_s = f"{time.perf_counter() - t0:.2f}"
        key = jax.random.fold_in(job.k_arch, seed)
        history = workdir / "histories" / f"{method}_{slug}_seed{seed}.csv"
        history.parent.mkdir(exist_ok=True)
        if method == "rs":
          res = random_search(scorer, key, num_archs=config.rs.num_archs, budget_s=config.budget_s or math.inf,
                              history_path=history, space=space)
        elif method == "rea":
          res = regularized_evolution(scorer, key, population_size=config.rea.population_size,
                                      sample_size=config.rea.sample_size or None,
                                      budget_s=config.budget_s or math.inf,
                                      max_evals=config.rea.max_evals or None, history_path=history,
                                      space=space)
        else:
          raise ValueError(f"unknown search method {method!r}; use 'rs' or 'rea'")
        trained = len({e.arch for e in res.history if not space.is_degenerate(e.arch)})
        runs.append({"run": run_id, "method": method, "scorer": scorer_name, "seed": seed,
                     "best_arch": res.best_arch, "best_score": repr(res.best_score),
                     "accuracy": repr(truth[res.best_arch]), "cost_s": f"{res.cost_s:.3f}",
                     "evaluations": len(res.history), "trained": trained, "compile_s": compile_s})
        print(f"{run_id}: {res.best_arch} acc {truth[res.best_arch]:.2f} cost {res.cost_s:.1f}s", flush=True)
  costs = unit_costs(space, job.k_init, train_data, config, k_train, job.images, job.labels,
                     workdir / "unit_costs.json", num_archs=config.get("unit_cost_archs", 5))
  ups = {s: speed_up(s, costs, config.baseline_epochs) for s in config.scorers}
  table = summarize_runs(runs.rows, optimum=max(truth.accuracy.values()), speed_ups=ups)
  write = correlation.write_table
  write(workdir / "search_table.csv", table, list(table[0]) if table else ["method"])
  text = format_runs(table, truth, costs=costs, baseline_epochs=config.baseline_epochs, space_name=space.name)
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  return table


def summarize_runs(rows, *, optimum: float, speed_ups: Mapping[str, float] | None = None) -> list[dict]:
  """Mean ± std of the chosen arch's accuracy and of the cost per (method,
  scorer), with the scorer's ``speed_ups`` entry (NaN if not given)."""
  out = []
  for method, scorer in dict.fromkeys((r["method"], r["scorer"]) for r in rows):
    sel = [r for r in rows if r["method"] == method and r["scorer"] == scorer]
    acc = np.array([float(r["accuracy"]) for r in sel])
    cost = np.array([float(r["cost_s"]) for r in sel])
    out.append({"method": method, "scorer": scorer, "seeds": len(sel), "accuracy_mean": float(acc.mean()),
                "accuracy_std": float(acc.std()), "cost_s_mean": float(cost.mean()),
                "evaluations_mean": float(np.mean([int(r["evaluations"]) for r in sel])),
                "trained_mean": float(np.mean([int(r["trained"]) for r in sel])),
                "speed_up": float((speed_ups or {}).get(scorer, math.nan)),
                "gap_to_optimum": float(optimum - acc.mean())})
  return out


def format_runs(table, truth, *, costs: Mapping | None = None, baseline_epochs: int = 200,
                space_name: str = "nb201") -> str:
  head = (f"Search on {space_name}, ground truth {truth.dataset}/{truth.split} "
          f"(optimum {max(truth.accuracy.values()):.2f})")
  if costs:
    head += (f"; speed-up = {baseline_epochs}·e/(t·e + m) with e = {costs['epoch_s']:.2f} s/epoch, "
             f"m = {costs['metric_s']['train']:.2f} s (train BN) / {costs['metric_s']['eval']:.2f} s (eval BN)")
  lines = [head, f"{'method':<7}{'scorer':<16}{'seeds':>6}{'accuracy':>18}{'cost (s)':>12}{'evals':>8}"
                 f"{'speed-up':>11}"]
  for r in table:
    up = "—" if math.isinf(r["speed_up"]) or math.isnan(r["speed_up"]) else f"{r['speed_up']:.0f}×"
    lines.append(f"{r['method']:<7}{r['scorer']:<16}{r['seeds']:>6}"
                 f"{r['accuracy_mean']:>11.2f} ± {r['accuracy_std']:<5.2f}{r['cost_s_mean']:>12.1f}"
                 f"{r['evaluations_mean']:>8.0f}{up:>11}")
  return "\n".join(lines)
