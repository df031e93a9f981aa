"""How a traced NB201 arch selects its ops, against a static network.

Times one jitted gradient of the summed logits (batch B, 32x32) for the
1,288,506-param arch with ``select='mask'``, ``select='switch'`` and a
concrete (static) arch, and prints XLA's flops and bytes-accessed estimates:

    python -m benchmarks.select_ablation --batch 64
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def measure(select, static, x):
  net = nb201.Network(select=select)
  variables = net.init(jax.random.key(0), x[:1], nb201.decode(ARCH))
  if static:
    loss = lambda p, xs: net.apply({**variables, "params": p}, xs, ARCH).sum()
    args = (variables["params"], x)
  else:  # ops as a traced jit argument, so XLA cannot fold the selection
    loss = lambda p, xs, o: net.apply({**variables, "params": p}, xs, o).sum()
    args = (variables["params"], x, jnp.asarray(nb201.decode(ARCH)))
  compiled = jax.jit(jax.grad(loss)).lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  jax.block_until_ready(compiled(*args))
  t = time.perf_counter()
  jax.block_until_ready(compiled(*args))
  return {"grad_s": round(time.perf_counter() - t, 3), "gflop": round(cost.get("flops", 0) / 1e9, 1),
          "gb_accessed": round(cost.get("bytes accessed", 0) / 1e9, 1)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=64)
  args = p.parse_args()
  x = jax.random.normal(jax.random.key(1), (args.batch, 32, 32, 3))
  res = {"jax": jax.__version__, "device": str(jax.devices()[0]), "batch": args.batch,
         "static": measure("mask", True, x), "mask": measure("mask", False, x),
         "switch": measure("switch", False, x)}
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  main()
