"""Sweep throughput (archs/s): NB201 archs scored in batches sharded over
devices (``ntkjax.parallel.score_sharded``), both BN modes, four metrics.

On a CPU each device count runs in its own process with
``--xla_force_host_platform_device_count`` (the count is fixed at JAX's
start); on a GPU/TPU host ``--host_devices 0`` uses the real devices. Run:

    python -m benchmarks.sweep_speed --host_devices 1,2,4 --out benchmarks/results/sweep_speed_cpu.json

Throughput counts steady batches only (the first batch compiles); the first
batch's time is reported apart.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import report


def measure(args) -> dict:
  import jax
  import jax.numpy as jnp
  from ntkjax import parallel
  from ntkjax.spaces import api
  space = api.NB201Space(C=args.C, N=args.N, variant=args.variant)
  mesh = parallel.arch_mesh()
  per_call = args.archs_per_device * mesh.size
  archs = space.sample(jax.random.key(0), per_call * (args.batches + 1))
  x = jax.random.normal(jax.random.key(1), (args.n, args.hw, args.hw, 3))
  y = jnp.arange(args.n) % 10
  param_filter = "paper_code" if args.variant == "paper_code" else "all"
  times = []

  class Clock:  # batch times from the per-arch ticks (each tick is batch time / batch size)
    def start(self, *a, **k):
      pass

    def tick(self, arch, seconds, compiled=False, **k):
      times.append((seconds, compiled))

  with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    parallel.score_sharded(f"{d}/r.csv", archs, list(range(len(archs))), space=space, images=x, labels=y,
                           key=jax.random.key(2), mesh=mesh, archs_per_device=args.archs_per_device,
                           progress=Clock(), param_filter=param_filter)
    total = time.perf_counter() - t
  first = sum(s for s, _ in times[:per_call])
  steady = sum(s for s, _ in times[per_call:])
  return {"devices": mesh.size, "device": str(jax.devices()[0]), "archs": len(archs),
          "archs_per_call": per_call, "first_batch_s": first, "steady_archs_per_s": (len(archs) - per_call) / steady,
          "total_s": total}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--host_devices", default="1,2,4", help="forced CPU device counts; 0 = the real devices")
  p.add_argument("--archs_per_device", type=int, default=2)
  p.add_argument("--batches", type=int, default=3, help="steady batches after the compiling one")
  p.add_argument("--n", type=int, default=16)
  p.add_argument("--hw", type=int, default=16)
  p.add_argument("--C", type=int, default=8)
  p.add_argument("--N", type=int, default=1)
  p.add_argument("--variant", default="benchmark")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--out", default="")
  args = p.parse_args()
  if args.child:
    print(json.dumps(measure(args)))
    return
  res = {**report.environment(), **{k: getattr(args, k) for k in ("archs_per_device", "n", "hw", "C", "N",
                                                                   "variant")}, "runs": []}
  for count in [int(c) for c in args.host_devices.split(",")]:
    env = dict(os.environ)
    if count:
      env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    cmd = [sys.executable, "-m", "benchmarks.sweep_speed", "--child"] + [
        f"--{k}={getattr(args, k)}" for k in ("archs_per_device", "batches", "n", "hw", "C", "N", "variant")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    run = json.loads(out.strip().splitlines()[-1])
    res["runs"].append(run)
    print(f"{run['devices']} device(s): {run['steady_archs_per_s']:.3g} archs/s steady, "
          f"first batch {run['first_batch_s']:.1f} s", flush=True)
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
