"""Op rates, XLA:CPU against PyTorch on NB201's shapes.

A coupled NTK row is one backward of the batch: convolution gradients and
the batch-norm/ReLU backward between them (``ntk_profile``). How fast each
library runs those ops on the same shapes says where the kernel can and
cannot catch up with the PyTorch loop. Side by side in one process, every
result checked against the others:

* convolutions: for every NB201 stage (32x32x16, 16x16x32, 8x8x64), 3x3
  and 1x1 stride-1 convolutions on a batch of B images (default 256: a
  chunk of 8 coupled rows at N = 32), the forward convolution, its input
  gradient and its weight gradient in JAX (compiled with the engine's
  options and with XLA's defaults) and in PyTorch (NCHW, as the loop runs,
  and channels-last);
* the backward of batch-statistics BN followed by ReLU, per row of N
  images (default 32), in JAX for R rows at once (vmapped, as the engine's
  chunks of R coupled rows run it) and in PyTorch one row at a time (the
  loop's ``native_batch_norm_backward`` and ``threshold_backward``).

Run:

    taskset -c 0 python -m benchmarks.op_rates --repeats 9 --out benchmarks/results/op_rates_cpu_1core.json

PyTorch uses as many threads as the process may run on, so pinning with
``taskset`` pins both libraries.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import layers, xla_options

STAGES = ((32, 16), (16, 32), (8, 64))  # NB201 at 32x32: (H, C) of each stage
KERNELS = (3, 1)
OPS = ("forward", "input_grad", "weight_grad")
_DN = ("NHWC", "HWIO", "NHWC")


def conv_flops(batch: int, hw: int, c_in: int, c_out: int, k: int) -> int:
  """Multiply-adds, times two, of a stride-1 'SAME' convolution; each of its
  two gradients costs the same."""
  return 2 * batch * hw * hw * c_out * k * k * c_in


def jax_ops(jit) -> dict:
  """The three ops as compiled JAX functions of (x, w, dy), all NHWC/HWIO."""
  def fwd(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)
  return {"forward": jit(lambda x, w, dy: fwd(x, w)),
          "input_grad": jit(lambda x, w, dy: jax.vjp(lambda x_: fwd(x_, w), x)[1](dy)[0]),
          "weight_grad": jit(lambda x, w, dy: jax.vjp(lambda w_: fwd(x, w_), w)[1](dy)[0])}


def _to_torch(torch, a, axes, fmt=None):
  """A NumPy array as a PyTorch tensor with its axes permuted (NHWC to
  NCHW: (0, 3, 1, 2)), in ``fmt`` (default contiguous)."""
  return torch.from_numpy(a.transpose(axes).copy()).contiguous(memory_format=fmt or torch.contiguous_format)


def torch_ops(torch, channels_last: bool, x, w, dy) -> tuple[dict, Callable]:
  """The three ops as PyTorch thunks on NumPy NHWC/HWIO arrays, and a
  function that brings a result back to JAX's layout."""
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  tx, tdy = (_to_torch(torch, a, (0, 3, 1, 2), fmt) for a in (x, dy))
  tw = _to_torch(torch, w, (3, 2, 0, 1), fmt)
  pad = w.shape[0] // 2
  grad = torch.nn.grad
  thunks = {"forward": lambda: torch.nn.functional.conv2d(tx, tw, padding=pad),
            "input_grad": lambda: grad.conv2d_input(tx.shape, tw, tdy, padding=pad),
            "weight_grad": lambda: grad.conv2d_weight(tx, tw.shape, tdy, padding=pad)}

  def to_jax_layout(op, t):
    return t.numpy().transpose((2, 3, 1, 0) if op == "weight_grad" else (0, 2, 3, 1))
  return thunks, to_jax_layout


def measure(batch: int, stages=STAGES, kernels=KERNELS, jits=("engine", "xla_default"), torch_layouts=("nchw", "nhwc"),
            repeats: int = 5) -> list[dict]:
  """One row per (stage, kernel, op): seconds and GFLOP/s for each JAX
  compilation and PyTorch layout, and the largest relative difference of
  any of them from the first JAX result."""
  import torch
  jit_fns = {"engine": xla_options.jit, "xla_default": jax.jit}
  compiled = {name: jax_ops(jit_fns[name]) for name in jits}
  rng = np.random.default_rng(0)
  rows = []
  for hw, c in stages:
    for k in kernels:
      x, dy = (rng.standard_normal((batch, hw, hw, c), np.float32) for _ in range(2))
      w = rng.standard_normal((k, k, c, c), np.float32)
      flops = conv_flops(batch, hw, c, c, k)
      args = tuple(map(jnp.asarray, (x, w, dy)))
      layouts = {lay: torch_ops(torch, lay == "nhwc", x, w, dy) for lay in torch_layouts}
      with torch.no_grad():
        for op in OPS:
          results, seconds = {}, {}
          for name, fns in compiled.items():
            results[name] = np.asarray(fns[op](*args))
            seconds[name] = report.median_seconds(lambda: fns[op](*args).block_until_ready(), repeats)
          for lay, (thunks, to_jax_layout) in layouts.items():
            results[f"torch_{lay}"] = to_jax_layout(op, thunks[op]())
            seconds[f"torch_{lay}"] = report.median_seconds(thunks[op], repeats)
          ref = next(iter(results.values()))
          scale = float(np.max(np.abs(ref)))
          rows.append({"hw": hw, "c": c, "k": k, "op": op, "batch": batch, "gflop": flops / 1e9, "seconds": seconds,
                       "gflop_per_s": {name: flops / t / 1e9 for name, t in seconds.items()},
                       "max_rel_diff": max(float(np.max(np.abs(r - ref))) / scale for r in results.values())})
  return rows


def bn_relu_backward(x, g):
  """The cotangent of batch-statistics BN (no affine) then ReLU at input
  ``x`` [n, H, W, C], for output cotangents ``g`` [R, n, H, W, C]."""
  no_affine = layers.BNState(scale=None, shift=None, mean=None, var=None)
  _, vjp = jax.vjp(lambda x_: jax.nn.relu(layers.batch_norm(x_, no_affine, True)[0]), x)
  return jax.vmap(lambda gi: vjp(gi)[0])(g)


def measure_bn(n: int, stages=STAGES, chunks=(1, 2, 8), repeats: int = 5) -> list[dict]:
  """One row per (stage, R): milliseconds per row of the BN/ReLU backward in
  JAX (R rows per call, engine options) and in PyTorch (a row per call),
  and the largest relative difference between the two."""
  import torch
  fn = xla_options.jit(bn_relu_backward)
  rng = np.random.default_rng(0)
  rows = []
  for hw, c in stages:
    x = rng.standard_normal((n, hw, hw, c), np.float32)
    tx = _to_torch(torch, x, (0, 3, 1, 2))
    weight, mean, var = torch.ones(c), torch.zeros(c), torch.ones(c)
    y, save_mean, save_invstd = torch.ops.aten.native_batch_norm(tx, weight, None, mean, var, True, 0.1, 1e-5)
    for r in chunks:
      g = rng.standard_normal((r, n, hw, hw, c), np.float32)
      tg = [_to_torch(torch, gi, (0, 3, 1, 2)) for gi in g]

      def torch_rows():  # as autograd runs it: ReLU's backward, then BN's
        return [torch.ops.aten.native_batch_norm_backward(torch.ops.aten.threshold_backward(gi, y, 0.0), tx, weight,
                                                          mean, var, save_mean, save_invstd, True, 1e-5,
                                                          [True, False, False])[0] for gi in tg]
      xj, gj = jnp.asarray(x), jnp.asarray(g)
      ours = np.asarray(fn(xj, gj))
      theirs = np.stack([t.numpy().transpose(0, 2, 3, 1) for t in torch_rows()])
      jax_s = report.median_seconds(lambda: fn(xj, gj).block_until_ready(), repeats)
      torch_s = report.median_seconds(torch_rows, repeats)
      rows.append({"hw": hw, "c": c, "n": n, "rows_per_call": r, "jax_ms_per_row": 1e3 * jax_s / r,
                   "torch_ms_per_row": 1e3 * torch_s / r,
                   "max_rel_diff": float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))})
  return rows


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--n", type=int, default=32, help="images per BN/ReLU backward row")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default="")
  args = p.parse_args()
  import torch
  cores = len(os.sched_getaffinity(0))
  torch.set_num_threads(cores)
  rows = measure(args.batch, repeats=args.repeats)
  names = list(rows[0]["seconds"])
  print(f"{'shape':>14s} {'op':>11s} " + " ".join(f"{n:>12s}" for n in names) + "  (GFLOP/s)")
  for r in rows:
    print(f"{r['hw']:>3d}x{r['hw']}x{r['c']:<3d} {r['k']}x{r['k']} {r['op']:>11s} "
          + " ".join(f"{r['gflop_per_s'][n]:12.1f}" for n in names))
  bn_rows = measure_bn(args.n, repeats=args.repeats)
  print("BN/ReLU backward, ms per row:")
  for r in bn_rows:
    print(f"{r['hw']:>3d}x{r['hw']}x{r['c']:<3d} R={r['rows_per_call']}  JAX {r['jax_ms_per_row']:.3f}  "
          f"PyTorch {r['torch_ms_per_row']:.3f}")
  report.emit({**report.environment(), "cores_used": cores, "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "rows": rows, "bn_relu_rows": bn_rows}, args.out)


if __name__ == "__main__":
  main()
