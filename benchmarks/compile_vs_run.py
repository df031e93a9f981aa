"""Compile versus run time of the eval-BN NTK per architecture, per space.

NB201 passes the architecture as data: one compilation serves every arch.
NB101 and the NDS spaces build a network per graph, so each new arch
compiles; this measures what that costs against the NTK itself, and what
NB101's masked network (``nb101_masked``: one compilation, every op at full
width) costs instead.

    python -m benchmarks.compile_vs_run --n 16 --archs 3 \
        --out benchmarks/results/compile_vs_run_cpu.json
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import ntk
from ntkjax.spaces import nb101, nb101_masked, nb201, nds


def _timed(fn, *args):
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


def _row(space, arch_str, params, fn, v, x, *args, cost: bool):
  first, second = _timed(fn, v, x, *args), _timed(fn, v, x, *args)
  row = {"space": space, "arch": arch_str, "params": params, "first_s": first, "steady_s": second}
  if cost:  # after the timings: lowering here compiles once more
    c = fn.lower(v, x, *args).compile().cost_analysis()
    c = c[0] if isinstance(c, list) else c
    row.update(gflop=c["flops"] / 1e9, gb_accessed=c["bytes accessed"] / 1e9)
  return row


def shared_rows(space, net, archs, x, cost=False):
  """One network and one jitted NTK for every arch, the arch passed as data:
  ``archs`` lists ``(arch_str, arch_input, params)``."""
  fn = jax.jit(ntk.empirical_ntk_fn(net, bn="eval"))
  init = jax.jit(net.init)
  return [_row(space, arch_str, params, fn, init(jax.random.key(k), x[:1], arch), x, arch, cost=cost)
          for k, (arch_str, arch, params) in enumerate(archs)]


def per_arch_rows(space, nets, x, cost=False):
  rows = []
  for arch_str, net, params in nets:
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn="eval"))
    rows.append(_row(space, arch_str, params, fn, net.init(jax.random.key(0), x[:1]), x, cost=cost))
  return rows


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=16, help="images per NTK (32x32)")
  p.add_argument("--archs", type=int, default=3, help="architectures per space")
  p.add_argument("--width", type=int, default=16, help="NDS width")
  p.add_argument("--depth", type=int, default=8, help="NDS depth")
  p.add_argument("--spaces", default="nb201,nb101,darts,enas,nasnet,amoeba,pnas")
  p.add_argument("--cost", action="store_true", help="add XLA's flops and bytes accessed per NTK")
  p.add_argument("--out", default="")
  args = p.parse_args()
  x = jax.random.normal(jax.random.key(1), (args.n, 32, 32, 3))
  rows = []
  for space in args.spaces.split(","):
    start = len(rows)
    if space == "nb201":
      net = nb201.Network(num_classes=10)
      archs = [nb201.encode(o) for o in nb201.sample(jax.random.key(0), args.archs)]
      rows += shared_rows("nb201", net, [(a, jnp.asarray(nb201.decode(a)), net.param_count(a))
                                         for a in archs], x, args.cost)
    elif space == "nb101":
      specs = [nb101.Spec.create([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1],
                                  [0, 0, 0, 0, 0]],
                                 ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"]),
               nb101.Spec.create([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]),
               nb101.Spec.create([[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                                 ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"])][:args.archs]
      rows += per_arch_rows("nb101", [(s.hash, nb101.Network(s), nb101.num_params(s)) for s in specs], x,
                            args.cost)
      rows += shared_rows("nb101_masked", nb101_masked.MaskedNetwork(),
                          [(s.hash, nb101_masked.encode(s), nb101.num_params(s)) for s in specs], x, args.cost)
    else:
      archs = nds.sample(jax.random.key(0), space, args.archs, width=args.width, depth=args.depth)
      rows += per_arch_rows(space, [(nds.encode(a), nds.Network(a), nds.num_params(a)) for a in archs], x,
                            args.cost)
    for r in rows[start:]:
      cost = f"  {r['gflop']:8.1f} GFLOP {r['gb_accessed']:6.1f} GB" if "gflop" in r else ""
      print(f"{r['space']:<13}{r['params']:>10,}  first {r['first_s']:7.2f} s  steady {r['steady_s']:6.2f} s"
            f"{cost}", flush=True)
  summary = {}
  for space in dict.fromkeys(r["space"] for r in rows):
    sel = [r for r in rows if r["space"] == space]
    compile_s = [r["first_s"] - r["steady_s"] for r in sel]
    summary[space] = {"archs": len(sel), "compile_s_mean": float(np.mean(compile_s)),
                      "steady_s_mean": float(np.mean([r["steady_s"] for r in sel])),
                      "compile_over_steady": float(np.mean(compile_s) / np.mean([r["steady_s"] for r in sel]))}
  report.emit({**report.environment(), **vars(args), "rows": rows, "summary": summary}, args.out)


if __name__ == "__main__":
  main()
