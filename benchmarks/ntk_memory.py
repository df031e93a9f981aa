"""Peak host memory of one chunked NTK at ImageNet16-120 shape.

    python -m benchmarks.ntk_memory --n 512 --hw 16 --chunk_size 64
"""

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp

from ntkjax import ntk
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--hw", type=int, default=16)
  p.add_argument("--classes", type=int, default=120)
  p.add_argument("--chunk_size", type=int, default=64)
  p.add_argument("--bn", default="eval")
  args = p.parse_args()
  net = nb201.Network(num_classes=args.classes)
  x = jax.random.normal(jax.random.key(1), (args.n, args.hw, args.hw, 3))
  ops = jnp.asarray(nb201.decode(ARCH))
  variables = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  fn = jax.jit(ntk.empirical_ntk_fn(net, bn=args.bn, chunk_size=args.chunk_size))
  t = time.perf_counter()
  kernel = fn(variables, x, ops).block_until_ready()
  print(json.dumps({**vars(args), "jax": jax.__version__, "device": str(jax.devices()[0]),
                    "kernel_shape": list(kernel.shape),
                    "seconds_incl_compile": round(time.perf_counter() - t, 1),
                    "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


if __name__ == "__main__":
  main()
