"""Depthwise convolution on the current device: XLA's grouped convolution
against ``layers``' shifted form (a loop over the kernel's taps), forward,
input gradient and kernel gradient, at the NB301 DARTS network's shapes.

    python -m benchmarks.depthwise_conv --out benchmarks/results/depthwise_conv_cpu.json

On the CPU ``layers.conv2d`` runs depthwise convs in the shifted form; on
other devices as the grouped convolution.
"""

import argparse
import functools

import jax
import numpy as np

from benchmarks import report
from ntkjax import layers, xla_options

# (spatial size, channels): the DARTS network's three stages at width 32.
STAGES = ((32, 32), (16, 64), (8, 128))
KERNELS = ((3, 1), (5, 1), (3, 2), (5, 2))  # (size, dilation): sep_conv and dil_conv


def _forms(groups: int, geometry):
  return {"grouped": functools.partial(layers._plain_conv, geometry=geometry, groups=groups),
          "shifted": functools.partial(layers._shifted_depthwise_conv, geometry=geometry)}


def _passes(conv):
  return {"forward": conv,
          "input_grad": lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0],
          "kernel_grad": lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0]}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=16, help="images (the rank_correlation minibatch on the CPU)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default="")
  args = p.parse_args()
  rows = []
  for size, channels in STAGES:
    for k, dilation in KERNELS:
      pad = dilation * (k - 1) // 2
      geometry = ((1, 1), ((pad, pad), (pad, pad)), (dilation, dilation))
      kx, kw, kg = jax.random.split(jax.random.key(0), 3)
      x = jax.random.normal(kx, (args.n, size, size, channels))
      w = jax.random.normal(kw, (k, k, 1, channels))
      g = jax.random.normal(kg, x.shape)
      row = {"size": size, "channels": channels, "kernel": k, "dilation": dilation}
      outs = {}
      for form, conv in _forms(channels, geometry).items():
        for name, fn in _passes(conv).items():
          operands = (x, w) if name == "forward" else (x, w, g)
          compiled = xla_options.jit(fn).lower(*operands).compile()
          outs[form, name] = jax.block_until_ready(compiled(*operands))
          row[f"{form}_{name}_ms"] = 1e3 * report.median_seconds(
              lambda: jax.block_until_ready(compiled(*operands)), args.repeats)
      row["max_rel_diff"] = max(float(np.max(np.abs(outs["grouped", n] - outs["shifted", n]))
                                      / np.max(np.abs(outs["grouped", n])))
                                for n in ("forward", "input_grad", "kernel_grad"))
      rows.append(row)
      print(f"{size:>3}x{size:<3} C={channels:<4} {k}x{k} d{dilation}  " + "  ".join(
          f"{n}: {row[f'grouped_{n}_ms']:6.1f} / {row[f'shifted_{n}_ms']:5.1f} ms"
          for n in ("forward", "input_grad", "kernel_grad")), flush=True)
  report.emit({**report.environment(), **vars(args), "rows": rows}, args.out)


if __name__ == "__main__":
  main()
