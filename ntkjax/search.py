"""Architecture search in any space guided by any score (paper Section 5):
the algorithms, their cost accounting and the Table 2 summary.

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

import math
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from ntkjax import proxies
from ntkjax.results import ResultsCSV
from ntkjax.scoring import MetricKey
from ntkjax.spaces import api

__all__ = ["Evaluation", "SearchResult", "Evaluator", "ScoreMemo", "ScorerSpec", "UnitCosts", "RunSummary",
           "random_search", "regularized_evolution", "speed_up", "summarize_runs", "RUN_FIELDS"]

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
  implementation would. ``is_degenerate`` (a space's) marks the archs that
  get -inf unscored.
  """

  def __init__(self, score: Callable, history_path=None, *, is_degenerate: Callable[[str], bool],
               cache: bool = True):
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
        value, cost = ((float(out[0]), float(out[1])) if isinstance(out, tuple)
                       else (float(out), time.perf_counter() - t))
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


def random_search(score: Callable, key: jax.Array, *, space: api.Space, num_archs: int = 100,
                  budget_s: float = math.inf, history_path=None, cache: bool = True) -> SearchResult:
  """Algorithm 1: the best of ``num_archs`` distinct random architectures of
  ``space``, fewer if the cost budget runs out first."""
  ev = Evaluator(score, history_path, cache=cache, is_degenerate=space.is_degenerate)
  for arch in space.sample(key, num_archs):
    if ev.total >= budget_s:
      break
    ev(arch)
  return ev.result()


def knas(score: Callable, key: jax.Array, *, space: api.Space, accuracy: Callable[[str], float],
         query_cost_s: float, num_archs: int = 100, k: int = 2, history_path=None,
         cache: bool = True) -> SearchResult:
  """KNAS (Xu et al., ICML 2021) as Table 2 of Mok et al. runs it: score
  ``num_archs`` random archs (``score``: Mean of the NTK at init), then query
  the benchmark accuracy of the top ``k`` and keep the best, charging
  ``query_cost_s`` (training the arch) per query. The result's score is the
  chosen arch's accuracy."""
  if k < 1:
    raise ValueError(f"KNAS needs k >= 1, got {k}")
  first = random_search(score, key, space=space, num_archs=num_archs, history_path=history_path, cache=cache)
  ranked = sorted({e.arch: e.score for e in first.history}.items(), key=lambda a: (-a[1], a[0]))[:k]
  best = max(ranked, key=lambda a: accuracy(a[0]))[0]
  return SearchResult(best, float(accuracy(best)), first.cost_s + len(ranked) * query_cost_s, first.history)


def regularized_evolution(score: Callable, key: jax.Array, *, space: api.Space, population_size: int = 10,
                          sample_size: int | None = None, budget_s: float = math.inf,
                          max_evals: int | None = None, history_path=None,
                          cache: bool = True) -> SearchResult:
  """Algorithm 2: regularized evolution in ``space`` until ``budget_s`` or
  ``max_evals``.

  ``sample_size=None`` takes the best of the whole population as parent, as
  the paper's Algorithm 2; an integer gives Real et al.'s tournament.
  """
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


class ScorerSpec(NamedTuple):
  """A scorer by name: ``oracle`` (the ground truth), ``params``, a
  zero-cost proxy at init (``nwot`` is NASWOT; ``ntkjax.proxies``), or
  ``<metric>_<bn>@<t>`` (``lga_eval@3`` is LGA_3: 3 epochs of SGD, then LGA
  in eval BN; ``@0`` is at initialisation)."""
  name: str
  key: MetricKey | None  # None for oracle, params and proxies
  epochs: int

  @property
  def proxy(self) -> bool:
    return self.name in proxies.NETWORK_PROXIES

  @classmethod
  def parse(cls, name: str) -> "ScorerSpec":
    if name in ("oracle", "params") or name in proxies.NETWORK_PROXIES:
      return cls(name, None, 0)
    metric, _, t = name.partition("@")
    try:
      key = MetricKey.parse(metric)
    except ValueError:
      key = None
    if key is None or not t.isdigit():
      raise ValueError(f"unknown scorer {name!r}; use oracle, params, a proxy ({', '.join(proxies.NETWORK_PROXIES)}) "
                       "or <metric>_<bn>@<t>, e.g. lga_eval@3")
    return cls(name, key, int(t))

  @property
  def slug(self) -> str:
    return self.name.replace("@", "_at")


class UnitCosts(NamedTuple):
  """Steady seconds of one training epoch and of the metrics per BN mode,
  measured back to back on the same archs (compilation excluded)."""
  epoch_s: float
  metric_s: Mapping[str, float]  # BN mode -> seconds
  archs: Sequence[str]
  num_images: int
  batch_size: int


def speed_up(scorer: ScorerSpec, costs: UnitCosts, baseline_epochs: int = 200) -> float:
  """``baseline_epochs · e / (t · e + m)``: how many times cheaper scoring an
  arch with ``scorer`` is than training it for ``baseline_epochs``, from the
  unit costs ``e`` (epoch) and ``m`` (the scorer's metrics); inf for the
  oracle and params, which cost nothing measurable; NaN for a proxy (its
  measured cost is in the search's own)."""
  if scorer.proxy:
    return math.nan
  if scorer.key is None:
    return math.inf
  e, m = costs.epoch_s, costs.metric_s[scorer.key.bn]
  return baseline_epochs * e / (scorer.epochs * e + m)


RUN_FIELDS = ["run", "method", "scorer", "seed", "best_arch", "best_score", "accuracy", "cost_s",
              "evaluations", "trained", "compile_s"]


class RunSummary(NamedTuple):
  """Table 2: one (method, scorer) over its seeds."""
  method: str
  scorer: str
  seeds: int
  accuracy_mean: float
  accuracy_std: float
  cost_s_mean: float
  evaluations_mean: float
  trained_mean: float
  speed_up: float
  gap_to_optimum: float


def summarize_runs(rows: Sequence[Mapping[str, str]], *, optimum: float,
                   speed_ups: Mapping[str, float] | None = None) -> list[RunSummary]:
  """Mean ± std of the chosen arch's accuracy and of the cost per (method,
  scorer) over the ``runs.csv`` rows, with the scorer's ``speed_ups`` entry
  (NaN if not given)."""
  out = []
  for method, scorer in dict.fromkeys((r["method"], r["scorer"]) for r in rows):
    sel = [r for r in rows if r["method"] == method and r["scorer"] == scorer]
    acc = np.array([float(r["accuracy"]) for r in sel])
    cost = np.array([float(r["cost_s"]) for r in sel])
    out.append(RunSummary(method, scorer, len(sel), float(acc.mean()), float(acc.std()), float(cost.mean()),
                          float(np.mean([int(r["evaluations"]) for r in sel])),
                          float(np.mean([int(r["trained"]) for r in sel])),
                          float((speed_ups or {}).get(scorer, math.nan)), float(optimum - acc.mean())))
  return out
