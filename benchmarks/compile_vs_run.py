"""Compile versus run time of the NTK per architecture, per space.

NB201 passes the architecture as data: one compilation serves every arch.
NB101 and the NDS spaces build a network per graph, so each new arch
compiles; this measures what that costs against the NTK itself, and what
the arch-as-data networks cost instead: NB101's masked network
(``nb101_masked``: one compilation, every op at full width) and the NDS
cells as data (``nds_switch``, DARTS and PNAS: one compilation, the
selected ops run through switches).

    python -m benchmarks.compile_vs_run --n 16 --archs 3 \
        --out benchmarks/results/compile_vs_run_cpu.json

``--bn train`` times the coupled (batch-statistics) kernel; a
``--compiler_option KEY=VALUE`` is added to the engine's XLA options.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import ntk, xla_options
from ntkjax.spaces import nb101, nb101_masked, nb201, nds, nds_switch


def _timed(fn, *args):
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


def _row(space, arch_str, params, fn, v, x, *args, cost: bool, bn: str):
  t = time.perf_counter()
  compiled = fn.lower(v, x, *args).compile()
  compile_s = time.perf_counter() - t
  first, second = _timed(compiled, v, x, *args), _timed(compiled, v, x, *args)
  row = {"space": space, "arch": arch_str, "params": params, "bn": bn, "compile_s": compile_s,
         "first_s": compile_s + first, "steady_s": second}
  if cost:  # after the timings: lowering here compiles once more
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, list) else c
    row.update(gflop=c["flops"] / 1e9, gb_accessed=c["bytes accessed"] / 1e9)
  return row


def shared_rows(space, net, archs, x, cost=False, bn="eval", options=None):
  """One network and one jitted NTK for every arch, the arch passed as data:
  ``archs`` lists ``(arch_str, arch_input, params)``."""
  fn = jax.jit(ntk.empirical_ntk_fn(net, bn=bn), compiler_options=options)
  init = jax.jit(net.init)
  return [_row(space, arch_str, params, fn, init(jax.random.key(k), x[:1], arch), x, arch, cost=cost, bn=bn)
          for k, (arch_str, arch, params) in enumerate(archs)]


def per_arch_rows(space, nets, x, cost=False, bn="eval", options=None):
  rows = []
  for arch_str, net, params in nets:
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn=bn), compiler_options=options)
    rows.append(_row(space, arch_str, params, fn, net.init(jax.random.key(0), x[:1]), x, cost=cost, bn=bn))
  return rows


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=16, help="images per NTK (32x32)")
  p.add_argument("--archs", type=int, default=3, help="architectures per space")
  p.add_argument("--width", type=int, default=16, help="NDS width")
  p.add_argument("--depth", type=int, default=8, help="NDS depth")
  p.add_argument("--spaces", default="nb201,nb101,darts,enas,nasnet,amoeba,pnas")
  p.add_argument("--cost", action="store_true", help="add XLA's flops and bytes accessed per NTK")
  p.add_argument("--bn", default="eval", choices=("eval", "train"), help="BN mode of the NTK")
  p.add_argument("--no_masked", action="store_true",
                 help="skip the arch-as-data networks (NB101's masked coupled kernel at the official size needs "
                      "28.5 GB)")
  p.add_argument("--no_per_graph", action="store_true", help="skip the per-graph networks of NB101 and NDS")
  p.add_argument("--compiler_option", action="append", default=[], metavar="KEY=VALUE",
                 help="an XLA option on top of the engine's (xla_options), e.g. xla_backend_optimization_level=0")
  p.add_argument("--out", default="")
  args = p.parse_args()
  how = {"bn": args.bn, "options": {**(xla_options.compiler_options() or {}),
                                     **dict(o.split("=", 1) for o in args.compiler_option)} or None}
  x = jax.random.normal(jax.random.key(1), (args.n, 32, 32, 3))
  rows = []
  for space in args.spaces.split(","):
    start = len(rows)
    if space == "nb201":
      net = nb201.Network(num_classes=10)
      archs = [nb201.encode(o) for o in nb201.sample(jax.random.key(0), args.archs)]
      rows += shared_rows("nb201", net, [(a, jnp.asarray(nb201.decode(a)), net.param_count(a))
                                         for a in archs], x, args.cost, **how)
    elif space == "nb101":
      specs = [nb101.Spec.create([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1],
                                  [0, 0, 0, 0, 0]],
                                 ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"]),
               nb101.Spec.create([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]),
               nb101.Spec.create([[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                                 ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"])][:args.archs]
      if not args.no_per_graph:
        rows += per_arch_rows("nb101", [(s.hash, nb101.Network(s), nb101.num_params(s)) for s in specs], x,
                              args.cost, **how)
      if not args.no_masked:
        rows += shared_rows("nb101_masked", nb101_masked.MaskedNetwork(),
                            [(s.hash, nb101_masked.encode(s), nb101.num_params(s)) for s in specs], x, args.cost,
                            **how)
    else:
      archs = nds.sample(jax.random.key(0), space, args.archs, width=args.width, depth=args.depth)
      if not args.no_per_graph:
        rows += per_arch_rows(space, [(nds.encode(a), nds.Network(a), nds.num_params(a)) for a in archs], x,
                              args.cost, **how)
      if space in nds_switch.SPACES and not args.no_masked:
        net = nds_switch.SwitchNetwork(space, args.width, args.depth)
        rows += shared_rows(f"{space}_switch", net, [(nds.encode(a), jnp.asarray(nds_switch.encode(a, space)),
                                                      nds.num_params(a)) for a in archs], x, args.cost, **how)
    for r in rows[start:]:
      cost = f"  {r['gflop']:8.1f} GFLOP {r['gb_accessed']:6.1f} GB" if "gflop" in r else ""
      print(f"{r['space']:<13}{r['params']:>10,}  compile {r['compile_s']:7.2f} s  first {r['first_s']:7.2f} s  "
          f"steady {r['steady_s']:6.2f} s"
            f"{cost}", flush=True)
  summary = {}
  for space in dict.fromkeys(r["space"] for r in rows):
    sel = [r for r in rows if r["space"] == space]
    compile_s = [r["compile_s"] for r in sel]
    summary[space] = {"archs": len(sel), "compile_s_mean": float(np.mean(compile_s)),
                      "steady_s_mean": float(np.mean([r["steady_s"] for r in sel])),
                      "compile_over_steady": float(np.mean(compile_s) / np.mean([r["steady_s"] for r in sel]))}
  report.emit({**report.environment(), **vars(args), "rows": rows, "summary": summary}, args.out)


if __name__ == "__main__":
  main()
