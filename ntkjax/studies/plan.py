"""What a study's run would cost, before it runs (``--plan``).

``plan(config, study)`` builds the config's space at its shapes, takes its
first arch, and lowers and compiles the jitted functions the study calls
per arch: the kernels of every BN mode (with the chunking a memory budget
picks), the network proxies, and for training studies one SGD step. Per
function it records the FLOPs, the device memory (arguments, outputs and
XLA scratch), the compile time and whether it fits the budget; it times one
call, or projects the call from the FLOPs at the device's measured rate
where one call would take more than ``max_call_s``; and it projects the
study's wall time from how many calls and compilations the config implies.
It needs shapes, not data: no images are read, and the ground truth only
where it is present (a space that draws from a benchmark's universe is
planned on a stand-in arch without it, ``spaces.registry``). The plan ends
with the files the run itself will read, found or missing, and writes
nothing. A config that cannot fit raises ``DoesNotFit`` at the
first function over the budget, uncalled and before the next one compiles;
it carries the functions measured until then (``measured``), so a long
plan's measurements are not lost with the refusal. Studies that compile
the same functions at the same shapes (a reproduction's studies on one
network) share one measurement through ``cache``.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from ntkjax import data as data_lib
from ntkjax import data_home, memory, scoring, train, xla_options
from ntkjax import search as search_lib
from ntkjax.studies import setup

__all__ = ["FunctionPlan", "StudyPlan", "DoesNotFit", "plan", "study_calls"]


class FunctionPlan(NamedTuple):
  name: str
  gflop: float | None       # XLA's count for one call (None where the backend gives none)
  memory_bytes: int         # arguments + outputs + scratch of the executable
  compile_s: float          # tracing, lowering and XLA's compilation
  call_s: float             # one call: timed, or projected from the FLOP rate
  timed: bool               # call_s was timed (else projected)
  chunking: str
  fits: bool
  calls: int                # calls in the whole study
  compiles: int             # compilations in the whole study (one per graph on per-graph spaces)
  lower_s: float            # the part of compile_s spent tracing and lowering (Python, one core)


class StudyPlan(NamedTuple):
  study: str
  device: str
  budget_bytes: int         # what 'fits' compares with: the budget, or the device's memory without one
  network: str
  arch: str
  functions: list[FunctionPlan]
  projected_s: float
  flop_rate: float | None   # GFLOP/s measured on the device (for projected calls)
  refused: bool = False     # the config does not fit: ``functions`` are those measured before the refusal
  budgeted: bool = True     # a memory budget chose the chunking (else the config's chunk_size)
  inputs: tuple = ()        # the files the run reads (``setup.Input``), found or not

  def budget_line(self) -> str:
    """The plan's one statement of its memory budget."""
    if self.budgeted:
      return (f"memory budget {memory.size(self.budget_bytes)}: each kernel takes the largest chunking that fits "
              "(column 'chunking')")
    return (f"no memory budget (ntk.memory_budget_gib unset; the default sets none on {self.device.split(':')[0]}): "
            f"kernels keep the config's chunking; 'fits' compares with the device's "
            f"{memory.size(self.budget_bytes)}")

  def summary(self, with_inputs: bool = True) -> str:
    lines = [f"plan of {self.study} on {self.device}; {self.budget_line()}",
             f"network: {self.network}; first arch {self.arch}",
             f"{'function':<22}{'GFLOP':>9}{'memory':>12}{'compile':>10}{'(lower)':>9}{'call':>10}{'calls':>8}"
             f"{'compiles':>9}  fits  chunking"]
    for f in self.functions:
      gflop = f"{f.gflop:9.1f}" if f.gflop is not None else f"{'-':>9}"
      call = f"{f.call_s:9.2f}s" if f.timed else f"{'-':>10}" if math.isnan(f.call_s) else f"{f.call_s:8.2f}s*"
      lines.append(f"{f.name:<22}{gflop}{memory.size(f.memory_bytes):>12}{f.compile_s:9.1f}s{f.lower_s:8.1f}s{call}"
                   f"{f.calls:>8}{f.compiles:>9}  {'yes' if f.fits else 'NO':<4}  {f.chunking}")
    if self.refused:
      lines.append("no projection: the config does not fit this device (the error below)")
    else:
      how = "timed calls" if all(f.timed for f in self.functions) else (
          f"* projected from {self.flop_rate:.1f} GFLOP/s measured on this device")
      lines.append(f"projected wall time: {self.projected_s / 3600:.2f} h ({how}; compilations included)")
    if with_inputs:
      lines += setup.input_lines(self.inputs)
    return "\n".join(lines)

  def tables(self):
    return {}

  def figures(self):
    return {}


class DoesNotFit(ValueError):
  """A config that cannot fit the device; ``measured`` (a plan with
  ``summary()``) holds what was measured before the refusal."""

  def __init__(self, message: str, measured):
    super().__init__(message)
    self.measured = measured


def study_calls(config: ml_collections.ConfigDict, study: str) -> tuple[int, int]:
  """(kernel evaluations, SGD steps) a run of ``study`` under ``config``
  makes; for a search, at most (each search's evaluations for every scorer
  that takes a kernel, without the memo's repeats)."""
  if study == "search":
    return _search_calls(config)
  n = config.space.get("num_archs")  # deciles and trajectories choose their own archs
  archs = {"deciles": lambda: 10 * config.per_decile * config.num_seeds,
           "init_schemes": lambda: n * len(config.schemes),
           "trajectories": lambda: 3 * config.per_group,
           "sweep": lambda: config.sweep.num_archs or n,
           }.get(study, lambda: n)()
  if "train" not in config:
    return archs, 0
  return archs * (1 + len(config.epochs)), archs * max(config.epochs) * _steps_per_epoch(config)


def _steps_per_epoch(config) -> int:
  return math.ceil((config.train.num_images or 50_000) / config.train.batch_size)


def _search_calls(config) -> tuple[int, int]:
  evals = {"rs": config.rs.num_archs, "rea": config.rea.max_evals or config.rs.num_archs,
           "knas": config.rs.num_archs}
  per_scorer = config.num_seeds * sum(evals.get(m, 0) for m in config.methods)
  specs = [search_lib.ScorerSpec.parse(s) for s in config.scorers]
  kernels = per_scorer * sum(s.key is not None for s in specs)
  return kernels, per_scorer * sum(s.epochs for s in specs if s.key is not None) * _steps_per_epoch(config)


def _search_cap_s(config) -> float:
  """What a budgeted search spends at most on kernels and training: each
  (seed, method, kernel scorer) search stops at ``budget_s``."""
  specs = [search_lib.ScorerSpec.parse(s) for s in config.scorers]
  return config.num_seeds * len(config.methods) * sum(s.key is not None for s in specs) * config.budget_s


def _measure(name, fn, args, budget, chunking, calls, compiles, max_call_s, rate) -> FunctionPlan:
  t = time.perf_counter()
  lowered = fn.lower(*args)
  lower_s = time.perf_counter() - t
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  gflop = cost["flops"] / 1e9 if cost and cost.get("flops") else None
  need = memory.compiled_bytes(compiled)
  fits = need <= budget
  # A function over the budget is not called: the plan refuses it (and the call could exhaust the host).
  timed = fits and (gflop is None or rate is None or gflop / rate <= max_call_s)
  if timed:
    jax.block_until_ready(compiled(*args))  # the first call pays for allocation
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    call_s = time.perf_counter() - t
  else:
    call_s = gflop / rate if gflop is not None and rate else math.nan
  return FunctionPlan(name, gflop, need, compile_s, call_s, timed, chunking, fits, calls, compiles, lower_s)


def _flop_rate() -> float:
  """GFLOP/s of a float32 matrix product on the default device."""
  a = jnp.ones((2048, 2048), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  t = time.perf_counter()
  jax.block_until_ready(f(a))
  return 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def _shapes_key(config: ml_collections.ConfigDict, options: dict) -> str:
  """What a compiled function depends on beyond its name (which gives an
  SGD step's batch): the network, the minibatch and the kernel options."""
  sp = config.space.to_dict()
  for k in ("num_archs", "sampling", "init", "init_per_arch", "init_seed", "clear_caches"):
    sp.pop(k, None)  # which archs and which weights: not the executable
  return repr((sorted(sp.items()), config.data.name, config.data.batch_size, tuple(config.bn_modes),
               sorted(options.items()), config.metrics.compat))


def plan(config: ml_collections.ConfigDict, study: str, *, max_call_s: float = 60.0,
         cache: dict | None = None) -> StudyPlan:
  """The plan of ``study`` under ``config`` (module docstring).
  ``DoesNotFit`` naming the function, its need and the budget where one
  cannot fit.
  ``cache`` (a dict the caller keeps) holds measured functions and the FLOP
  rate for the next plan: a function compiled at the same shapes is measured
  once."""
  if "space" not in config:
    raise ValueError(f"--plan: {study} compiles no network, so there is nothing to plan (it runs in seconds)")
  setup.check_config(config)
  num_classes, size = data_lib.describe(config.data.name)
  needed = tuple(setup.inputs(config))
  try:
    truth = setup.truth_from_config(config.ground_truth, config.data.name)
  except data_home.MissingData:  # shapes are enough: the run itself refuses without it
    truth = None
  space = setup.space_from_config(config.space, num_classes, truth, stand_in=truth is None)
  arch = space.sample(jax.random.key(config.seed), 1)[0]
  cand = space.candidate(arch)
  x = jnp.zeros((config.data.batch_size, size, size, 3), jnp.float32)
  labels = jnp.zeros((config.data.batch_size,), jnp.int32)
  options = setup.ntk_options(config)
  budget = memory.resolve_budget(options["memory_budget"])
  shown_budget = budget if budget is not None else memory.device_budget()
  archs, steps = study_calls(config, study)
  per_graph = 1 if space.shares_compilation else None
  cache = {} if cache is None else cache
  if "flop_rate" not in cache:
    cache["flop_rate"] = _flop_rate()
  rate = cache["flop_rate"]
  shapes = _shapes_key(config, options)
  functions, total = [], 0.0

  def study_plan(refused=False):
    return StudyPlan(study, str(jax.devices()[0]), shown_budget, setup.network_label(config.space), arch,
                     list(functions), total, rate, refused, budget is not None, needed)

  def refuse(message):
    raise DoesNotFit(message, study_plan(refused=True)) from None

  # init_schemes builds the network once per scheme: every function compiles again
  repeats = len(config.schemes) if study == "init_schemes" else 1

  def add(name, build, calls, chunking=lambda: "-"):
    """Measures ``build()``'s (fn, args), or takes the cached measurement."""
    nonlocal total
    compiles = (per_graph or min(calls, archs)) * repeats
    key = (name, shapes)
    if key not in cache:
      fn, args = build()
      try:
        f = _measure(name, fn, args, shown_budget, "", calls, compiles, max_call_s, rate)
      except memory.MemoryBudgetError as e:
        refuse(f"{study}: {name}: {e}")
      cache[key] = f._replace(chunking=chunking())
    f = cache[key]._replace(calls=calls, compiles=compiles)
    functions.append(f)
    total += calls * f.call_s + compiles * f.compile_s
    if not f.fits:  # refused at once: the functions after it would only add compile time
      refuse(f"{study}: {f.name} needs {memory.size(f.memory_bytes)} of device memory, more than the "
             f"budget of {memory.size(shown_budget)} on {jax.devices()[0]}; use fewer images "
             "(data.batch_size), ntk.memory_budget_gib, or a larger device")

  # The initialisation: compiled once per network, called once per arch unless archs share it.
  init_args = (jax.random.key(config.seed), x[:1], *cand.args)
  if ("init", shapes) not in cache:
    t = time.perf_counter()
    lowered = jax.jit(cand.net.init).lower(*init_args)
    lower_s = time.perf_counter() - t
    exe = lowered.compile()
    compile_s = time.perf_counter() - t
    jax.block_until_ready(exe(*init_args))
    t = time.perf_counter()
    jax.block_until_ready(exe(*init_args))
    cache[("init", shapes)] = FunctionPlan("init", None, memory.compiled_bytes(exe), compile_s,
                                           time.perf_counter() - t, True, "-", True, 0, 0, lower_s)
    cache[("init executable", shapes)] = exe
  shared = space.shares_variables and not config.space.init_per_arch
  add("init", None, repeats if shared else archs)
  variables = cache[("init executable", shapes)](*init_args)

  bn_modes = tuple(config.bn_modes)
  if bn_modes:
    kernels = scoring.score_fn(cand.net, bn_modes=bn_modes, compat=config.metrics.compat, **options)

    def chunking():
      chunks = []
      for bn, fn in kernels.ntk_fns.items():
        chosen = list(fn.plans.values())
        chunks.append(f"{bn}: {chosen[0].implementation}, chunk_size={chosen[0].chunk_size}" if chosen else
                      f"{bn}: chunk_size={config.ntk.chunk_size}")
      return "; ".join(chunks)
    add(f"kernels ({', '.join(bn_modes)} BN)", lambda: (kernels.kernels, (variables, x, *cand.args)), archs,
        chunking)
  proxies = setup.proxy_names(config) if "proxies" in config else ()
  if proxies:
    f = scoring.score_fn(cand.net, bn_modes=(), proxies=proxies, num_classes=num_classes, **options)
    if f.proxies is not None:
      add("proxies", lambda: (f.proxies, (variables, x, labels, jax.random.key(0), *cand.args)), archs)
  if steps:
    micro = {}

    def sgd_step():
      tx = setup.optimizer(config)

      def step_for(m):
        return train.make_step(cand.net, tx, mean=(0.5,) * 3, std=(0.25,) * 3, padding=train.default_padding(size),
                               micro_batch_size=m)
      images = jnp.zeros((config.train.batch_size, size, size, 3), jnp.uint8)
      targets = jnp.zeros((config.train.batch_size,), jnp.int32)
      args = (train.init_state(variables, tx), images, targets, jax.random.key(0), *cand.args)
      try:
        micro["size"] = train.fit_micro_batch(step_for, args, config.train.batch_size, options["memory_budget"])
      except memory.MemoryBudgetError as e:
        refuse(f"{study}: SGD step: {e}")
      return xla_options.jit(step_for(micro["size"])), args
    add(f"SGD step (batch {config.train.batch_size})", sgd_step, steps,
        lambda: "whole batch" if micro["size"] is None else f"micro-batches of {micro['size']} (BN statistics "
        "per micro-batch)")
  if study == "search" and config.get("budget_s"):
    total = min(total, _search_cap_s(config) + sum(f.compiles * f.compile_s for f in functions))
  return study_plan()
