"""Sweep throughput (archs/s): NB201 archs scored in batches sharded over
devices (``ntkjax.parallel.score_sharded``), both BN modes, four metrics.

On a CPU each device count runs in its own process with
``--xla_force_host_platform_device_count`` (the count is fixed at JAX's
start); on a GPU/TPU host ``--host_devices 0`` uses the real devices. Run:

    python -m benchmarks.sweep_speed --host_devices 1,2,4 --out benchmarks/results/sweep_speed_cpu.json

Throughput counts steady batches only (the first batch compiles); the first
batch's time is reported apart. ``--flops`` adds XLA's flop count for one
arch's kernels (both BN modes) at the measured size and at the full sweep's
(C=16, N=5, 256 images of 32x32), read off the lowered program without
compiling it, and from them and the measured rate an estimate for the full
table on one H100 (a range over assumed sustained FP32 rates, not a
measurement).
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


H100_FP32_PEAK = 67e12  # SXM, non-tensor FP32 flop/s (NVIDIA's datasheet)
FULL = dict(C=16, N=5, n=256, hw=32)
NUM_ARCHS = 15625


def flops_per_arch(C, N, n, hw, variant) -> float:
  """XLA's flop count of one arch's kernels in both BN modes (one device,
  one arch per call), from the lowered program."""
  import jax
  import jax.numpy as jnp

  from ntkjax import parallel
  from ntkjax.spaces import api
  space = api.NB201Space(C=C, N=N, variant=variant)
  net = space.candidate(space.sample(jax.random.key(0), 1)[0]).net
  fn = parallel.batched_kernels(net, mesh=parallel.arch_mesh(jax.devices()[:1]),
                                param_filter="paper_code" if variant == "paper_code" else "all")
  x = jax.ShapeDtypeStruct((n, hw, hw, 3), jnp.float32)
  v = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, hw, hw, 3)), jnp.zeros(6, jnp.int32)))
  return float(fn.lower(v, x, (jax.ShapeDtypeStruct((1, 6), jnp.int32),)).cost_analysis()["flops"])


def estimate(res: dict) -> dict:
  """The full table's hours on one H100 at 10-50% of its FP32 peak, and the
  CPU's own sustained rate for scale."""
  here = flops_per_arch(res["C"], res["N"], res["n"], res["hw"], res["variant"])
  full = flops_per_arch(**FULL, variant=res["variant"])
  best = max(r["steady_archs_per_s"] for r in res["runs"])
  hours = {f"{int(f * 100)}%": NUM_ARCHS * full / (f * H100_FP32_PEAK) / 3600 for f in (0.1, 0.25, 0.5)}
  return {"flops_per_arch_measured_size": here, "flops_per_arch_full": full,
          "cpu_sustained_flops_per_s": here * best, "h100_hours_full_table_at_fraction_of_fp32_peak": hours}


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
  p.add_argument("--flops", action="store_true", help="add flop counts and the H100 estimate")
  p.add_argument("--reuse", action="store_true", help="take the runs from --out instead of measuring again")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--out", default="")
  args = p.parse_args()
  if args.child:
    print(json.dumps(measure(args)))
    return
  res = {**report.environment(), **{k: getattr(args, k) for k in ("archs_per_device", "n", "hw", "C", "N",
                                                                   "variant")}, "runs": []}
  if args.reuse:
    res["runs"] = json.loads(open(args.out).read())["runs"]
  else:
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
  if args.flops:
    res["estimate"] = estimate(res)
    print(f"full table on one H100: {res['estimate']['h100_hours_full_table_at_fraction_of_fp32_peak']} hours")
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
