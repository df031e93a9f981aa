"""The coupled NB201 kernel under a memory budget against no budget.

Compiles the kernel without a budget (its memory: arguments, outputs and
XLA scratch), then plans it under ``--fraction`` of that
(``ntk.plan_memory``: every candidate compiled and measured), and times both
executables alternately (median of ``--repeats``), in one process.

    python -m benchmarks.memory_budget --n 64 --C 8 --N 1 --fraction 0.25 \
        --out benchmarks/results/memory_budget_cpu.json

``--budget_gib B`` plans under B GiB instead (14.4 is what 'auto' leaves of
a 16 GB card); ``--only_planned`` then skips the unconstrained kernel, for a
process whose device is capped (``XLA_PYTHON_CLIENT_MEM_FRACTION``) below
what it needs, and plans under 'auto', the device's own limit.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks import report
from ntkjax import memory, ntk, xla_options
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=64, help="images (32x32 unless --hw)")
  p.add_argument("--hw", type=int, default=32)
  p.add_argument("--C", type=int, default=8)
  p.add_argument("--N", type=int, default=1)
  p.add_argument("--variant", default="paper_code")
  p.add_argument("--bn", default="train")
  p.add_argument("--fraction", type=float, default=0.25, help="budget as a fraction of the unconstrained need")
  p.add_argument("--budget_gib", type=float, default=None, help="budget in GiB (instead of --fraction)")
  p.add_argument("--only_planned", action="store_true",
                 help="plan under 'auto' (the device's limit) and time that kernel alone")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--out", default="")
  args = p.parse_args()
  net = nb201.Network(C=args.C, N=args.N, variant=args.variant)
  x = jax.random.normal(jax.random.key(1), (args.n, args.hw, args.hw, 3))
  ops = jnp.asarray(nb201.decode(ARCH))
  v = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  options = xla_options.compiler_options()

  def compiled(**kw):
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn=args.bn, memory_budget=None, **kw), compiler_options=options)
    t = time.perf_counter()
    c = fn.lower(v, x, ops).compile()
    return c, time.perf_counter() - t

  free, free_compile_s = compiled()
  free_bytes = memory.compiled_bytes(free)
  if args.only_planned:
    budget = memory.resolve_budget("auto")
  else:
    budget = int(args.budget_gib * 2**30) if args.budget_gib else int(free_bytes * args.fraction)
  t = time.perf_counter()
  plan = ntk.plan_memory(net, v, x, ops, bn=args.bn, memory_budget=budget)
  plan_s = time.perf_counter() - t
  planned, planned_compile_s = compiled(implementation=plan.implementation, chunk_size=plan.chunk_size)
  runs = (("planned", planned),) if args.only_planned else (("free", free), ("planned", planned))
  error = float("nan")
  if not args.only_planned:
    reference = jax.block_until_ready(free(v, x, ops))
    error = float(jnp.abs(jax.block_until_ready(planned(v, x, ops)) - reference).max() / jnp.abs(reference).max())
  else:
    jax.block_until_ready(planned(v, x, ops))
  times = {name: [] for name, _ in runs}
  for _ in range(args.repeats):  # alternate, so load on the machine hits both alike
    for name, c in runs:
      s = time.perf_counter()
      jax.block_until_ready(c(v, x, ops))
      times[name].append(time.perf_counter() - s)
  steady = {k: sorted(t)[len(t) // 2] for k, t in times.items()}
  free_s = steady.get("free", float("nan"))
  report.emit({**report.environment(), **vars(args), "free_bytes": free_bytes, "budget_bytes": budget,
               "plan": plan._asdict(), "plan_search_s": plan_s, "free_compile_s": free_compile_s,
               "planned_compile_s": planned_compile_s, "free_steady_s": free_s,
               "planned_steady_s": steady["planned"], "slowdown": steady["planned"] / free_s,
               "max_relative_difference": error}, args.out)


if __name__ == "__main__":
  main()
