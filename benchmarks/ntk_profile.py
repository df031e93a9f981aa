"""Where an empirical-NTK kernel's time goes on XLA:CPU, op by op.

Compiles one ntkjax kernel of ``benchmarks.ntk_speed`` (same arch and
conventions) with ``xla_cpu_enable_xprof_traceme``, traces one call after
a warm-up (``jax.profiler``, Perfetto JSON), and sums the time of every
XLA op, grouped by what it computes: convolutions by output shape and
window, matrix products by output shape, each with its GFLOP/s (nominal:
a convolution with ``lhs_dilate`` counts the zeros it multiplies); other
ops by the name XLA gave them (``copy_bitcast_fusion``: a layout
transpose; ``*_fusion``: elementwise). An op in a loop body (``lax.map``)
counts once per iteration; the loop itself is not a row. Pin to one core for a per-core
breakdown (ops on two cores overlap, and their sum exceeds the wall time):

    taskset -c 0 python -m benchmarks.ntk_profile --n 32 --variant paper_code --bn eval \\
        --out benchmarks/results/ntk_profile_cpu_paper_code_eval_n32.json

CPU only: the trace option is XLA:CPU's.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import ntk_speed, report
from ntkjax import xla_options
from ntkjax.spaces import nb201

_TRACE_OPTION = {"xla_cpu_enable_xprof_traceme": True}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$", re.M)
_SHAPE = re.compile(r"^\(?[a-z]+[0-9]*\[([0-9,]*)\]")
_OPERANDS = re.compile(r" (?:convolution|dot)\(%([\w.\-]+), %([\w.\-]+)\)")


def instructions(hlo_text: str) -> dict[str, str]:
  """Every HLO instruction's name (module-wide unique) -> the text after ``=``."""
  return {m.group(1): m.group(2) for m in _INSTRUCTION.finditer(hlo_text)}


def _dims(rhs: str) -> tuple[int, ...]:
  m = _SHAPE.match(rhs)
  if m is None:
    raise ValueError(f"no array shape at the start of HLO {rhs[:80]!r}")
  return tuple(int(d) for d in m.group(1).split(",") if d)


def _called(rhs: str, bodies: dict[str, list[str]]) -> list[str]:
  """The instructions of the computation an instruction calls (none if it calls none)."""
  called = re.search(r"calls=%([\w.\-]+)", rhs)
  return bodies.get(called.group(1), []) if called else []


def _computes(rhs: str) -> bool:
  return " convolution(" in rhs or " dot(" in rhs


def _core(name: str, index: dict[str, str], bodies: dict[str, list[str]]) -> str | None:
  """The convolution or dot an op computes: the instruction itself, or the
  one inside the computation a (library) fusion calls."""
  rhs = index.get(name)
  if rhs is None:
    return None
  if _computes(rhs):
    return name
  return next((inner for inner in _called(rhs, bodies) if _computes(index[inner])), None)


def flops(name: str, index: dict[str, str]) -> float:
  """Nominal FLOPs of a convolution or dot instruction (2 per multiply-add)."""
  rhs = index[name]
  out = math.prod(_dims(rhs))
  lhs, rhs_operand = _OPERANDS.search(rhs).groups()
  if " convolution(" in rhs:
    kernel_labels = re.search(r"dim_labels=\w+_(\w+)->", rhs).group(1)
    kernel = _dims(index[rhs_operand])
    return 2.0 * out * math.prod(kernel) / kernel[kernel_labels.index("o")]
  contracting = [int(d) for d in re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", rhs).group(1).split(",") if d]
  lhs_dims = _dims(index[lhs])
  return 2.0 * out * math.prod(lhs_dims[d] for d in contracting)


def _bodies(hlo_text: str) -> dict[str, list[str]]:
  """Computation name -> its instructions' names."""
  out, current = {}, None
  for line in hlo_text.splitlines():
    head = re.match(r"^(?:ENTRY )?%([\w.\-]+) .*\{$", line)
    if head:
      current = out.setdefault(head.group(1), [])
    elif line.startswith("}"):
      current = None
    elif current is not None:
      m = _INSTRUCTION.match(line)
      if m:
        current.append(m.group(1))
  return out


def _contains_others(rhs: str) -> bool:
  """Control flow whose trace events span the ops of its bodies (counted themselves)."""
  return any(f" {op}(" in rhs for op in ("while", "conditional", "call"))


def breakdown(durations: dict[str, tuple[float, int]], hlo_text: str) -> list[dict]:
  """Rows of op time (``durations``: HLO op name -> (seconds, executions)
  in the trace), largest first: ``op``, ``shape``, ``detail``, ``seconds``,
  ``instructions`` (distinct HLO ops in the group), ``executions`` (more
  than instructions where an op sits in a loop body), ``share`` of the
  summed op time, and ``gflop_per_s`` for convolutions and dots (None
  otherwise). Names that are not ops of ``hlo_text`` are left out, and so
  are loops and branches: their bodies' ops are counted."""
  index, bodies = instructions(hlo_text), _bodies(hlo_text)
  groups = collections.defaultdict(lambda: {"seconds": 0.0, "instructions": 0, "executions": 0, "flop": 0.0})
  for name, (seconds, executions) in durations.items():
    rhs = index.get(name)
    if rhs is None or _contains_others(rhs):  # not an HLO op (runtime events), or a loop or branch
      continue
    core = _core(name, index, bodies)
    shape = list(_dims(rhs)) if _SHAPE.match(rhs) else None
    if core is not None:
      core_rhs = index[core]
      op = "convolution" if " convolution(" in core_rhs else "dot"
      library = "ynn" if '"__ynn_fusion"' in rhs else "xnn" if '"__xnn_fusion"' in rhs else "xla"
      window = re.search(r"window=\{([^}]*)\}", core_rhs)
      key = (f"{op} ({library})", str(shape), window.group(1) if window else "")
    elif '"__ynn_fusion"' in rhs and any(" reduce(" in index[i] for i in _called(rhs, bodies)):
      key = ("reduce (ynn)", str(shape), "")
    else:
      key = (re.sub(r"\.\d+$", "", name), str(shape), "")
    g = groups[key]
    g["seconds"] += seconds
    g["instructions"] += 1
    g["executions"] += executions
    if core is not None:
      g["flop"] += executions * flops(core, index)
  total = sum(g["seconds"] for g in groups.values()) or 1.0
  rows = [{"op": op, "shape": shape, "detail": detail, "seconds": g["seconds"], "instructions": g["instructions"],
           "executions": g["executions"], "share": g["seconds"] / total,
           "gflop_per_s": None if not g["flop"] or not g["seconds"] else g["flop"] / g["seconds"] / 1e9}
          for (op, shape, detail), g in groups.items()]
  return sorted(rows, key=lambda r: -r["seconds"])


def op_durations(trace_events: list[dict]) -> dict[str, tuple[float, int]]:
  """(Seconds, executions) per name of the complete Perfetto events (HLO
  ops, and runtime events that ``breakdown`` leaves out)."""
  seconds, executions = collections.Counter(), collections.Counter()
  for e in trace_events:
    if e.get("ph") == "X":
      seconds[e["name"]] += e["dur"] / 1e6
      executions[e["name"]] += 1
  return {name: (seconds[name], executions[name]) for name in seconds}


def traced_call(compiled, *args) -> tuple[list[dict], float]:
  """Trace one call of ``compiled`` (already warm): (Perfetto events, wall seconds)."""
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      t = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      wall = time.perf_counter() - t
    paths = glob.glob(f"{tmp}/**/perfetto_trace.json.gz", recursive=True)
    if not paths:
      raise RuntimeError(f"jax.profiler wrote no perfetto_trace.json.gz under {tmp}")
    with gzip.open(paths[0]) as f:
      data = json.load(f)
  return (data["traceEvents"] if isinstance(data, dict) else data), wall


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=32)
  p.add_argument("--hw", type=int, default=32)
  p.add_argument("--variant", default="paper_code", choices=tuple(ntk_speed.PARAM_FILTER))
  p.add_argument("--bn", default="eval", choices=("eval", "train"))
  p.add_argument("--network", default="static", choices=ntk_speed.NETWORKS)
  p.add_argument("--jit", default="engine", choices=("engine", "xla_default"),
                 help="the engine's XLA:CPU options (ntkjax.xla_options) or XLA's defaults")
  p.add_argument("--top", type=int, default=20, help="rows printed (all go to --out)")
  p.add_argument("--out", default="")
  args = p.parse_args()
  if jax.default_backend() != "cpu":
    p.error(f"ntk_profile traces XLA:CPU only; the default backend is {jax.default_backend()!r}")
  options = {**(xla_options.CPU_OPTIONS if args.jit == "engine" else {}), **_TRACE_OPTION}
  net = nb201.Network(variant=args.variant)
  x = jax.random.normal(jax.random.key(2), (args.n, args.hw, args.hw, 3))
  ops = jnp.asarray(nb201.decode(ntk_speed.ARCH))
  variables = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  jit = lambda fn: jax.jit(fn, compiler_options=options)
  compiled = ntk_speed.ntkjax_kernel(args.variant, args.bn, "structured", args.network, None, jit).lower(
      variables, x, ops).compile()
  np.asarray(compiled(variables, x, ops))
  events, wall = traced_call(compiled, variables, x, ops)
  hlo = compiled.as_text()
  rows = breakdown(op_durations(events), hlo)
  summed = sum(r["seconds"] for r in rows)
  print(f"traced call {wall:.2f} s wall, {summed:.2f} s summed over ops (loops and branches counted by their "
        "bodies' ops)")
  for r in rows[:args.top]:
    rate = "" if r["gflop_per_s"] is None else f"{r['gflop_per_s']:7.1f} GFLOP/s"
    print(f"{r['seconds']:8.3f} s {100 * r['share']:5.1f}% {r['instructions']:5d} {r['executions']:6d}  {rate:15s} "
          f"{r['op']} {r['shape']} {r['detail']}")
  report.emit({**report.environment(), "cores_used": len(os.sched_getaffinity(0)), "n": args.n, "hw": args.hw,
               "variant": args.variant, "bn": args.bn, "network": args.network, "jit": args.jit,
               "arch": ntk_speed.ARCH, "wall_s": wall, "summed_op_s": summed, "rows": rows}, args.out)


if __name__ == "__main__":
  main()
