"""NB201 with each stage's cells as one scan (``scan_cells``) against the
unrolled cells: trace-and-lower time, whole compilation, steady call, for
the two jitted functions a rank-correlation run compiles (both BN modes'
kernels; the 11 network proxies), arch as data (``select='switch'``).

Each (function, form) compiles in its own process, so neither reuses the
other's traces or executables. ``--rounds R`` instead compiles both forms
of each function in one process and times their steady calls interleaved,
one call of each per round (``report.interleaved``): the ratio's median and
range over the rounds.

    python -m benchmarks.cell_scan --n 16 --out benchmarks/results/cell_scan_cpu.json
    python -m benchmarks.cell_scan --n 16 --rounds 5 --out benchmarks/results/cell_scan_steady_cpu.json
"""

import argparse
import json
import subprocess
import sys
import time

from benchmarks import report

ARCH = "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def _function(function: str, scan: bool, n: int, C: int, N: int, variant: str):
  """(jitted function, its arguments) of one form."""
  import jax
  import jax.numpy as jnp

  from ntkjax import proxies, scoring, xla_options
  from ntkjax.spaces import nb201

  ops = jnp.asarray(nb201.decode(ARCH))
  net = nb201.Network(C=C, N=N, variant=variant, select="switch", scan_cells=scan)
  x, labels = jnp.zeros((n, 32, 32, 3)), jnp.zeros((n,), jnp.int32)
  v = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  if function == "kernels":
    return scoring.score_fn(net, bn_modes=("train", "eval")).kernels, (v, x, ops)
  # proxies_fn scans a scan-capable network unless told not to: the unrolled form asks
  f = xla_options.jit(proxies.proxies_fn(net, list(proxies.NETWORK_PROXIES), num_classes=10, scan_cells=scan))
  return f, (v, x, labels, jax.random.key(0), ops)


def steady_ratio(function: str, rounds: int, n: int, C: int, N: int, variant: str) -> dict:
  """Both forms compiled in this process, their calls interleaved."""
  import jax
  calls = {}
  for scan in (False, True):
    fn, args = _function(function, scan, n, C, N, variant)
    compiled = fn.lower(*args).compile()
    calls["scan" if scan else "unrolled"] = lambda c=compiled, a=args: jax.block_until_ready(c(*a))
  times = report.interleaved(calls, rounds)
  return {"function": function, "seconds": times, "unrolled_over_scan": report.ratio(times, "unrolled", "scan")}


def measure(function: str, scan: bool, n: int, C: int, N: int, variant: str) -> dict:
  """One row, in this process."""
  import jax
  fn, args = _function(function, scan, n, C, N, variant)
  t = time.perf_counter()
  lowered = fn.lower(*args)
  lower_s = time.perf_counter() - t
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  jax.block_until_ready(compiled(*args))
  steady_s = report.median_seconds(lambda: jax.block_until_ready(compiled(*args)), 3)
  return {"function": function, "scan_cells": scan, "lower_s": lower_s, "compile_s": compile_s,
          "steady_s": steady_s}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n", type=int, default=16)
  p.add_argument("--C", type=int, default=16)
  p.add_argument("--N", type=int, default=5)
  p.add_argument("--variant", default="paper_code")
  p.add_argument("--functions", default="kernels,proxies")
  p.add_argument("--rounds", type=int, default=0, help="time the steady calls interleaved, in one process")
  p.add_argument("--one", default="", help=argparse.SUPPRESS)  # function:scan, run in a child process
  p.add_argument("--out", default="")
  a = p.parse_args()
  if a.one:
    function, scan = a.one.split(":")
    print(json.dumps(measure(function, scan == "1", a.n, a.C, a.N, a.variant)))
    return
  if a.rounds:
    rows = [steady_ratio(f, a.rounds, a.n, a.C, a.N, a.variant) for f in a.functions.split(",")]
    report.emit({"benchmark": "cell_scan_steady", "environment": report.environment(), "n": a.n, "C": a.C,
                 "N": a.N, "variant": a.variant, "arch": ARCH, "rounds": a.rounds, "rows": rows}, a.out)
    return
  rows = []
  for function in a.functions.split(","):
    for scan in (True, False):
      out = subprocess.run([sys.executable, "-m", "benchmarks.cell_scan", "--one", f"{function}:{int(scan)}",
                            "--n", str(a.n), "--C", str(a.C), "--N", str(a.N), "--variant", a.variant],
                           check=True, capture_output=True, text=True).stdout
      rows.append(json.loads(out.strip().splitlines()[-1]))
      print(rows[-1], file=sys.stderr, flush=True)
  report.emit({"benchmark": "cell_scan", "environment": report.environment(), "n": a.n, "C": a.C, "N": a.N,
               "variant": a.variant, "arch": ARCH, "rows": rows}, a.out)


if __name__ == "__main__":
  main()
