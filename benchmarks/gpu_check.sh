#!/usr/bin/env bash
# One prepared pass over the GPU figures of BENCHMARKS.md (issue 2's H100
# targets and the paper-scale epoch), about 6-8 minutes on an H100. Writes
# JSON and logs to ${OUT:-benchmarks/results/gpu}; run from the repo root:
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# The lent GPU machines' image has jax (CUDA), flax, optax, absl and torch
# but not xautodl (the torch baselines' NB201 network): carry its wheel in
# .whl/ (BUILD.md, "GPU check"); without it the torch rows fail and the
# ntkjax rows still print.
set -o pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch shares the card
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
py=python3
$py -c "import jax; print(jax.devices())" 2>&1 | tee "$OUT/devices.log"
# NTK at the paper's N=256, both BN modes, against torch.func and the TE-NAS loop on the same GPU.
timeout 300 $py -m benchmarks.ntk_speed --n 256 --repeats 3 --out "$OUT/ntk_speed_gpu.json" 2>&1 | tee "$OUT/ntk_speed.log"
# The paper's training step: full NB201, batch 1024, 49 steps = one 50k epoch; scan and loop modes.
timeout 180 $py -m benchmarks.train_speed --batch 1024 --steps 10 --modes scan,loop --out "$OUT/train_speed_gpu.json" 2>&1 | tee "$OUT/train_speed.log"
# Compile against steady NTK per space at N=256 (and NB101's masked network).
timeout 240 $py -m benchmarks.compile_vs_run --n 256 --archs 2 --width 16 --depth 8 --out "$OUT/compile_vs_run_gpu.json" 2>&1 | tee "$OUT/compile_vs_run.log"
# The sweep's throughput on the real devices (archs/s, full NB201, N=256, 8 archs per device per call).
timeout 240 $py -m benchmarks.sweep_speed --host_devices 0 --archs_per_device 8 --batches 2 --n 256 --hw 32 --C 16 --N 5 --flops --out "$OUT/sweep_speed_gpu.json" 2>&1 | tee "$OUT/sweep_speed.log"
