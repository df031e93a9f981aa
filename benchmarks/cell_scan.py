"""NB201 with each stage's cells as one scan (``scan_cells``) against the
unrolled cells: trace-and-lower time, whole compilation, steady call, for
the two jitted functions a rank-correlation run compiles (both BN modes'
kernels; the 11 network proxies), arch as data (``select='switch'``).

Each (function, form) compiles in its own process, so neither reuses the
other's traces or executables.

    python -m benchmarks.cell_scan --n 16 --out benchmarks/results/cell_scan_cpu.json
"""

import argparse
import json
import subprocess
import sys
import time

from benchmarks import report

ARCH = "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def measure(function: str, scan: bool, n: int, C: int, N: int, variant: str) -> dict:
  """One row, in this process."""
  import jax
  import jax.numpy as jnp

  from ntkjax import proxies, scoring
  from ntkjax.spaces import nb201

  ops = jnp.asarray(nb201.decode(ARCH))
  net = nb201.Network(C=C, N=N, variant=variant, select="switch", scan_cells=scan)
  x, labels = jnp.zeros((n, 32, 32, 3)), jnp.zeros((n,), jnp.int32)
  v = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  if function == "kernels":
    fn, args = scoring.score_fn(net, bn_modes=("train", "eval")).kernels, (v, x, ops)
  else:
    f = scoring.score_fn(net, bn_modes=(), proxies=list(proxies.NETWORK_PROXIES), num_classes=10)
    fn, args = f.proxies, (v, x, labels, jax.random.key(0), ops)
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
  p.add_argument("--one", default="", help=argparse.SUPPRESS)  # function:scan, run in a child process
  p.add_argument("--out", default="")
  a = p.parse_args()
  if a.one:
    function, scan = a.one.split(":")
    print(json.dumps(measure(function, scan == "1", a.n, a.C, a.N, a.variant)))
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
