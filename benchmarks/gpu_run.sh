#!/usr/bin/env bash
# The one call a lent GPU machine gets (the `device` tool), prepared so that it cannot be wasted:
# unpack the packages the image lacks, print the GPU, then, each part under its own time limit
# so that one that hangs leaves the others their time (issue 21: about 5 minutes in all):
#   1. gpu_oom_check.py: a run past the GPU's memory ends with GpuOutOfMemory's one line;
#   2. gpu_step_profile.py: one training step, eager and compiled kernel tables side by side,
#      the pooling levers (KERNELS) against today's ATen path;
#   3. gpu_bench.py: the sides, 8 compiled trials under CUDA MPS with each lever against today's
#      best (default:8:mps), and what --trials-per-gpu auto picks here with its trials' peaks;
#   4. compile_reuse.py padded-processes: a trial's start-up, process start to first step, for
#      three ratios of one channel configuration (one compile, then the cache).
# Here, first: bash ../shared/tools/device-pack (builds .devicepack/, ignored by git). Then one
# device call: carry [".devicepack"], timeout_s 330, command: bash benchmarks/gpu_run.sh
# (a rerun at once fits the 15 minutes: 2 x 330 s and the machine's start).
# Everything lands in $OUT (8 files at most come back): run.log, nvidia-smi.txt,
# gpu_step_profile.{json,md}, gpu_bench.{json,md}, compile_reuse.json, oom.txt.
# Knobs (seconds; CLIPS per genre): STEP_S=95 BENCH_S=140 REUSE_S=50 OOM_S=25 CLIPS=40
#   SIDES=default:8:mps,default:8:mps:select-conv1,default:8:mps:select,default:auto:mps
# A CPU dry run of the whole script (small, no GPU figures):
#   OUT=/tmp/dry DRY=1 bash benchmarks/gpu_run.sh
set -uo pipefail
out=${OUT:?OUT must name the folder whose files come back}
began=$(date +%s)
stage() { echo "[$(($(date +%s) - began)) s] $*"; }
if [ -z "${DRY:-}" ]; then
  mkdir -p /tmp/site
  tar xJf .devicepack/site.tar.xz -C /tmp/site
  chmod -R a+x /tmp/site/ray/core # wheels unpacked with zipfile lose the executable bits
  export PYTHONPATH=/tmp/site:$PWD
  shape=513,129 batch=32 clips=${CLIPS:-40} duration=30 steps=40 warmup=10 device=cuda
else # a dry run on CPUs: the same calls at a size a CPU finishes
  shape=65,33 batch=4 clips=${CLIPS:-10} duration=6 steps=3 warmup=2 device=cpu
fi
export PYTHONUNBUFFERED=1

run() {
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >"$out/nvidia-smi.txt"
  command -v nvidia-cuda-mps-control >>"$out/nvidia-smi.txt" 2>&1 ||
    echo "no MPS control binary" >>"$out/nvidia-smi.txt"

  stage "1. out-of-memory check"
  timeout "${OOM_S:-25}" python benchmarks/gpu_oom_check.py >"$out/oom.txt" 2>&1
  cat "$out/oom.txt"

  stage "2. step profile"
  timeout "$((${STEP_S:-95} + 30))" python benchmarks/gpu_step_profile.py --out "$out" \
    --device "$device" --shape "$shape" --batch "$batch" --warmup "$warmup" --steps "$steps" \
    --budget-s "${STEP_S:-95}"

  stage "3. sides"
  local sides=${SIDES:-default:8:mps,default:8:mps:select-conv1,default:8:mps:select,default:auto:mps}
  [ -n "${DRY:-}" ] && sides=${SIDES:-eager:2,eager:2:select-conv1,eager:auto}
  timeout "$((${BENCH_S:-140} + 20))" python benchmarks/gpu_bench.py --out "$out" \
    --clips-per-genre "$clips" --duration "$duration" --sides "$sides" --epochs 2 \
    --budget-s "${BENCH_S:-140}" --search-budget-s 0
  # a bench cut off by its timeout leaves Ray's processes (and their GPU memory) behind; on
  # the lent machine nothing else runs Ray (never on a shared machine: DRY)
  [ -z "${DRY:-}" ] && python -m ray.scripts.scripts stop --force >/dev/null 2>&1

  stage "4. start-up of compiled trials, one channel configuration"
  timeout "${REUSE_S:-50}" python benchmarks/compile_reuse.py --device "$device" \
    --shape "$shape" --batch "$batch" --ratios 16,8,31.43 --steps 5 --sides padded-processes \
    --out "$out"
  stage "done"
}
run 2>&1 | tee "$out/run.log"
