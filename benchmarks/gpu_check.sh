#!/usr/bin/env bash
# One prepared pass over the GPU figures of BENCHMARKS.md, "NTK kernel speed,
# GPU" and the sections it names per row. Writes JSON and
# logs to ${OUT:-benchmarks/results/gpu}; run from the repo root, naming the
# sections to run (default: all, about 15 minutes on an H200):
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh ntk ntk_switch
#
#   ntk         N=256 kernels on the static network, both
#               conventions and BN modes, against torch.func and the TE-NAS
#               loop on the same card (~5 min)
#   ntk_switch  the same under paper_code on the arch-as-data switch network
#   ntk_fp32    paper_code train BN with both libraries in full float32 (no TF32)
#   train       the paper's batch-1024 training step, scan and loop modes
#   compile     compile against steady NTK per space at N=256
#   sweep       the sweep's archs/s on the real devices
#   paper       the reproduction at the paper's scale: ntkjax-reproduce --plan
#               (every study compiled at its shapes, the projected time), the
#               coupled paper_code kernel under a 16 GB card's budget at N=256
#               (32x32) and N=512 (16x16), then run in a process capped at
#               16 GB, and a slice of Figure 3: SLICE_ARCHS (100) archs at
#               N=256 in both BN modes (archs/s in its log) (~10 min)
#
# The paper section reads CIFAR-10 and the NB201 table from the data home
# (NTKJAX_DATA, or shared/data under the working directory); without them the
# plan and the memory rows run and the slice is skipped.
#
# The torch rows need xautodl (the official NB201 network). Wheels in .whl/
# are installed first, for a machine without a package index (BUILD.md, "GPU
# check"); without xautodl the torch rows fail and the ntkjax rows still print.
set -o pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch shares the card
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
py=python3
sections=${*:-ntk ntk_switch ntk_fp32 train compile sweep paper}
[ -d shared/data ] && export NTKJAX_DATA=${NTKJAX_DATA:-$PWD/shared/data}
$py -c "import jax, flax; print(jax.devices(), jax.__version__, flax.__version__)" 2>&1 | tee "$OUT/devices.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$OUT/devices.log"
for s in $sections; do
  case $s in
    ntk) timeout 330 $py -m benchmarks.ntk_speed --n 256 --repeats 3 --networks static --variants paper_code,benchmark \
           --out "$OUT/ntk_speed_gpu.json" 2>&1 | tee "$OUT/ntk_speed.log" ;;
    ntk_switch) timeout 170 $py -m benchmarks.ntk_speed --n 256 --repeats 3 --networks switch --variants paper_code \
           --out "$OUT/ntk_speed_gpu_switch.json" 2>&1 | tee "$OUT/ntk_speed_switch.log" ;;
    ntk_fp32) timeout 230 $py -m benchmarks.ntk_speed --n 256 --repeats 2 --networks static --variants paper_code \
           --bn train --full_float32 --out "$OUT/ntk_speed_gpu_fp32.json" 2>&1 | tee "$OUT/ntk_speed_fp32.log" ;;
    train) timeout 180 $py -m benchmarks.train_speed --batch 1024 --steps 10 --modes scan,loop \
           --out "$OUT/train_speed_gpu.json" 2>&1 | tee "$OUT/train_speed.log" ;;
    compile) timeout 240 $py -m benchmarks.compile_vs_run --n 256 --archs 2 --width 16 --depth 8 \
           --out "$OUT/compile_vs_run_gpu.json" 2>&1 | tee "$OUT/compile_vs_run.log" ;;
    sweep) timeout 240 $py -m benchmarks.sweep_speed --host_devices 0 --archs_per_device 8 --batches 2 --n 256 \
           --hw 32 --C 16 --N 5 --flops --out "$OUT/sweep_speed_gpu.json" 2>&1 | tee "$OUT/sweep_speed.log" ;;
    paper)
      truth=(); [ -n "${NTKJAX_DATA:-}" ] || for st in rank_correlation deciles init_schemes post_training search; do
        truth+=("--config.$st.ground_truth.table="); done
      timeout 240 $py -m experiments.reproduce --config configs/reproduce.py:full "${truth[@]}" --plan \
        --workdir "$OUT/reproduce" 2>&1 | tee "$OUT/reproduce_plan.log"
      timeout 150 $py -m benchmarks.memory_budget --n 256 --C 16 --N 5 --budget_gib 14.4 --repeats 3 \
        --out "$OUT/memory_budget_16gb_n256.json" 2>&1 | tee "$OUT/memory_budget_16gb.log"
      timeout 150 $py -m benchmarks.memory_budget --n 512 --hw 16 --C 16 --N 5 --budget_gib 14.4 --repeats 3 \
        --out "$OUT/memory_budget_16gb_n512.json" 2>&1 | tee -a "$OUT/memory_budget_16gb.log"
      frac=$($py -c "import jax; print(round(16e9 / jax.devices()[0].memory_stats()['bytes_limit'], 3))")
      XLA_PYTHON_CLIENT_MEM_FRACTION=$frac timeout 120 $py -m benchmarks.memory_budget --n 256 --C 16 --N 5 \
        --only_planned --repeats 3 --out "$OUT/memory_budget_capped_n256.json" 2>&1 | tee -a "$OUT/memory_budget_16gb.log"
      if [ -n "${NTKJAX_DATA:-}" ]; then
        timeout 300 $py -m experiments.rank_correlation --config configs/rank_correlation.py:full,paper_code \
          --config.space.num_archs="${SLICE_ARCHS:-100}" --config.proxies='()' --workdir "$OUT/paper_slice" \
          2>&1 | tee "$OUT/paper_slice.log"
      else
        echo "paper slice skipped: no data home (shared/data)" | tee "$OUT/paper_slice.log"
      fi ;;
    *) echo "unknown section $s; known: ntk ntk_switch ntk_fp32 train compile sweep paper" >&2; exit 2 ;;
  esac
done
