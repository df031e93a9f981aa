"""The coupled (paper_code, train BN) NB201 kernel's memory and time against
its rows in flight: the default chunking (8 rows, mapped) beside given
chunk sizes, one process, interleaved steady calls.

    python -m benchmarks.coupled_chunks --n 64 --C 8 --N 1 --chunks default,64 \\
        --out benchmarks/results/coupled_chunks_cpu.json

``--chunks`` lists ``default`` and row counts; a count of at least the rows
vectorises every row in one backward (no chunking); a ``/no_ynn_reduce``
suffix compiles that entry without XLA:CPU's YNNPACK reduce fusions, which
take no broadcast operand, so that the broadcasts a backward multiplies by
are materialised at full size (docs/design.md). Each is compiled at the
call's shapes, its XLA scratch read from ``memory_analysis()``, and timed
over ``--rounds`` interleaved rounds (median and range, and each one's ratio
to the first listed); ``--compile_only`` stops after the memory, for shapes
whose calls take minutes on the CPU (N = 256).
"""

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks import ntk_speed, report
from ntkjax import ntk, xla_options
from ntkjax.spaces import nb201

_YNN = "xla_cpu_experimental_ynn_fusion_type"
# The engine's CPU options without YNNPACK's reduce fusions.
NO_YNN_REDUCE = {_YNN: ",".join(t for t in xla_options.CPU_OPTIONS[_YNN].split(",")
                                if t != "LIBRARY_FUSION_TYPE_REDUCE")}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=64, help="images, 32x32")
  p.add_argument("--C", type=int, default=8)
  p.add_argument("--N", type=int, default=1)
  p.add_argument("--chunks", default="default,64")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--compile_only", action="store_true")
  p.add_argument("--out", default="")
  args = p.parse_args()
  net = nb201.Network(C=args.C, N=args.N, variant="paper_code")
  x = jax.random.normal(jax.random.key(1), (args.n, 32, 32, 3))
  ops = jnp.asarray(nb201.decode(ntk_speed.ARCH))  # the NTK speed benchmarks' arch
  v = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  names = args.chunks.split(",")
  compiled, results = {}, {}
  for name in names:
    rows, _, variant = name.partition("/")
    if variant not in ("", "no_ynn_reduce"):
      raise ValueError(f"unknown variant {variant!r} in --chunks entry {name!r}; known: no_ynn_reduce")
    chunk = None if rows == "default" else int(rows)
    options = xla_options.compiler_options()
    if variant and options:
      options = {**options, **NO_YNN_REDUCE}
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn="train", memory_budget=None, chunk_size=chunk),
                 compiler_options=options)
    t = time.perf_counter()
    compiled[name] = fn.lower(v, x, ops).compile()
    m = compiled[name].memory_analysis()
    results[name] = {"compile_s": time.perf_counter() - t, "temp_gib": m.temp_size_in_bytes / 2**30}
  if args.compile_only:
    return report.emit({**report.environment(), **vars(args), "results": results}, args.out)
  reference = jax.block_until_ready(compiled[names[0]](v, x, ops))
  for name in names[1:]:
    got = compiled[name](v, x, ops)
    results[name]["max_relative_difference"] = float(jnp.abs(got - reference).max() / jnp.abs(reference).max())
  calls = {name: (lambda c=c: jax.block_until_ready(c(v, x, ops))) for name, c in compiled.items()}
  times = report.interleaved(calls, args.rounds)
  for name in names:
    results[name]["steady_s"] = sorted(times[name])[len(times[name]) // 2]
    results[name]["over_first"] = report.ratio(times, name, names[0])
  report.emit({**report.environment(), **vars(args), "results": results}, args.out)


if __name__ == "__main__":
  main()
