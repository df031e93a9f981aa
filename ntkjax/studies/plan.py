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
It reads the ground truth (for the space's universe) but no images and
writes nothing.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from ntkjax import data as data_lib
from ntkjax import memory, scoring, train, xla_options
from ntkjax.studies import setup

__all__ = ["FunctionPlan", "StudyPlan", "plan", "study_calls"]


class FunctionPlan(NamedTuple):
  name: str
  gflop: float | None       # XLA's count for one call (None where the backend gives none)
  memory_bytes: int         # arguments + outputs + scratch of the executable
  compile_s: float
  call_s: float             # one call: timed, or projected from the FLOP rate
  timed: bool               # call_s was timed (else projected)
  chunking: str
  fits: bool
  calls: int                # calls in the whole study
  compiles: int             # compilations in the whole study (one per graph on per-graph spaces)


class StudyPlan(NamedTuple):
  study: str
  device: str
  budget_bytes: int
  network: str
  arch: str
  functions: list[FunctionPlan]
  projected_s: float
  flop_rate: float | None   # GFLOP/s measured on the device (for projected calls)

  def summary(self) -> str:
    lines = [f"plan of {self.study} on {self.device}, memory budget {memory.size(self.budget_bytes)}",
             f"network: {self.network}; first arch {self.arch}",
             f"{'function':<22}{'GFLOP':>9}{'memory':>12}{'compile':>10}{'call':>10}{'calls':>8}{'compiles':>9}"
             "  fits  chunking"]
    for f in self.functions:
      gflop = f"{f.gflop:9.1f}" if f.gflop is not None else f"{'-':>9}"
      call = f"{f.call_s:9.2f}s" if f.timed else f"{f.call_s:8.2f}s*"
      lines.append(f"{f.name:<22}{gflop}{memory.size(f.memory_bytes):>12}{f.compile_s:9.1f}s{call}{f.calls:>8}"
                   f"{f.compiles:>9}  {'yes' if f.fits else 'NO':<4}  {f.chunking}")
    how = "timed calls" if all(f.timed for f in self.functions) else (
        f"* projected from {self.flop_rate:.1f} GFLOP/s measured on this device")
    lines.append(f"projected wall time: {self.projected_s / 3600:.2f} h ({how}; compilations included)")
    return "\n".join(lines)

  def tables(self):
    return {}

  def figures(self):
    return {}


def study_calls(config: ml_collections.ConfigDict, study: str) -> tuple[int, int]:
  """(archs scored, SGD steps) a run of ``study`` under ``config`` makes."""
  n = config.space.num_archs
  archs = {"deciles": lambda: 10 * config.per_decile * config.num_seeds,
           "init_schemes": lambda: n * len(config.schemes),
           "trajectories": lambda: 3 * config.per_group,
           "sweep": lambda: config.sweep.num_archs or n,
           "search": lambda: config.num_seeds * (config.rs.num_archs + (config.rea.max_evals or 0)),
           }.get(study, lambda: n)()
  if "train" not in config:
    return archs, 0
  steps_per_epoch = math.ceil((config.train.num_images or 50_000) / config.train.batch_size)
  return archs * (1 + len(config.epochs)), archs * max(config.epochs) * steps_per_epoch


def _measure(name, fn, args, budget, chunking, calls, compiles, max_call_s, rate) -> tuple[FunctionPlan, float]:
  t = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  gflop = cost["flops"] / 1e9 if cost and cost.get("flops") else None
  need = memory.compiled_bytes(compiled)
  timed = gflop is None or rate is None or gflop / rate <= max_call_s
  if timed:
    jax.block_until_ready(compiled(*args))  # the first call pays for allocation
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    call_s = time.perf_counter() - t
  else:
    call_s = gflop / rate
  return FunctionPlan(name, gflop, need, compile_s, call_s, timed, chunking, need <= budget, calls, compiles), call_s


def _flop_rate() -> float:
  """GFLOP/s of a float32 matrix product on the default device."""
  a = jnp.ones((2048, 2048), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  t = time.perf_counter()
  jax.block_until_ready(f(a))
  return 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def plan(config: ml_collections.ConfigDict, study: str, *, max_call_s: float = 60.0) -> StudyPlan:
  """The plan of ``study`` under ``config`` (module docstring). ValueError
  naming the function, its need and the budget where one cannot fit."""
  if "space" not in config:
    raise ValueError(f"--plan: {study} compiles no network, so there is nothing to plan (it runs in seconds)")
  setup.check_config(config)
  num_classes, size = data_lib.describe(config.data.name)
  truth = setup.truth_from_config(config.ground_truth)
  space = setup.space_from_config(config.space, num_classes, truth)
  arch = space.sample(jax.random.key(config.seed), 1)[0]
  cand = space.candidate(arch)
  x = jnp.zeros((config.data.batch_size, size, size, 3), jnp.float32)
  labels = jnp.zeros((config.data.batch_size,), jnp.int32)
  variables = jax.jit(cand.net.init)(jax.random.key(config.seed), x[:1], *cand.args)
  options = setup.ntk_options(config)
  budget = memory.resolve_budget(options["memory_budget"])
  shown_budget = budget if budget is not None else memory.device_budget()
  archs, steps = study_calls(config, study)
  per_graph = 1 if space.shares_compilation else None
  rate = _flop_rate()
  functions, total = [], 0.0

  def add(name, fn, args, chunking, calls):
    nonlocal total
    compiles = per_graph or min(calls, archs)
    try:
      f, call_s = _measure(name, fn, args, shown_budget, chunking, calls, compiles, max_call_s, rate)
    except memory.MemoryBudgetError as e:
      raise ValueError(f"{study}: {name}: {e}") from None
    functions.append(f)
    total += calls * call_s + compiles * f.compile_s

  bn_modes = tuple(config.bn_modes)
  if bn_modes:
    f = scoring.score_fn(cand.net, bn_modes=bn_modes, compat=config.metrics.compat, **options)
    add(f"kernels ({', '.join(bn_modes)} BN)", f.kernels, (variables, x, *cand.args), "", archs)
    chunks = []
    for bn, fn in f.ntk_fns.items():
      chosen = list(fn.plans.values())
      chunks.append(f"{bn}: {chosen[0].implementation}, chunk_size={chosen[0].chunk_size}" if chosen else
                    f"{bn}: chunk_size={config.ntk.chunk_size} (no budget)")
    functions[-1] = functions[-1]._replace(chunking="; ".join(chunks))
  proxies = setup.proxy_names(config) if "proxies" in config else ()
  if proxies:
    f = scoring.score_fn(cand.net, bn_modes=(), proxies=proxies, num_classes=num_classes, **options)
    if f.proxies is not None:
      add("proxies", f.proxies, (variables, x, labels, jax.random.key(0), *cand.args), "-", archs)
  if steps:
    tx = setup.optimizer(config)
    step = xla_options.jit(train.make_step(cand.net, tx, mean=(0.5,) * 3, std=(0.25,) * 3,
                                           padding=train.default_padding(size)))
    images = jnp.zeros((config.train.batch_size, size, size, 3), jnp.uint8)
    targets = jnp.zeros((config.train.batch_size,), jnp.int32)
    state = train.init_state(variables, tx)
    add(f"SGD step (batch {config.train.batch_size})", step, (state, images, targets, jax.random.key(0),
                                                               *cand.args), "-", steps)
  for f in functions:
    if not f.fits:
      raise ValueError(f"{study}: {f.name} needs {memory.size(f.memory_bytes)} of device memory, more than the "
                       f"budget of {memory.size(shown_budget)} on {jax.devices()[0]}; use fewer images "
                       "(data.batch_size), ntk.memory_budget_gib, or a larger device")
  return StudyPlan(study, str(jax.devices()[0]), shown_budget, setup.network_label(config.space), arch, functions,
                   total, rate)
