#!/usr/bin/env bash
# The one call a lent GPU machine gets (the `device` tool), prepared so that it cannot be wasted:
# unpack the packages the image lacks, print the GPU, run gpu_bench.py inside a deadline that
# leaves room for the files to come back. Here, first: bash ../shared/tools/device-pack
# Then one device call, carry [".devicepack"], command: bash benchmarks/gpu_run.sh
# Everything lands in $OUT: gpu_bench.{md,json,log}, search.tar.gz, nvidia-smi.txt,
# compile_reuse.{json,log}. About 9 minutes: call it with timeout_s 590.
# Arguments go to gpu_bench.py after the budgets (the second run of 2026-11-27:
#   COMPILE_REUSE_S=0 BUDGET_S=240 SEARCH_BUDGET_S=110 bash benchmarks/gpu_run.sh \
#       --sides "" --search-side default:8:mps)
set -euo pipefail
out=${OUT:?OUT must name the folder whose files come back}
mkdir -p /tmp/site
tar xJf .devicepack/site.tar.xz -C /tmp/site
chmod -R a+x /tmp/site/ray/core # wheels unpacked with zipfile lose the executable bits
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
command -v nvidia-cuda-mps-control >>"$out/nvidia-smi.txt" 2>&1 || echo "no MPS control binary" >>"$out/nvidia-smi.txt"
# --budget-s is the script's own deadline: sides that would not fit before the search are skipped
python benchmarks/gpu_bench.py --out "$out" --budget-s "${BUDGET_S:-450}" \
  --search-budget-s "${SEARCH_BUDGET_S:-140}" "$@" 2>&1 | tee "$out/gpu_bench.log"
# then, in what is left: does leaving the SE layers out of compiled graphs (so that every r
# shares them) cost step time on a GPU, and what does a second network's compile cost
[ "${COMPILE_REUSE_S:-100}" -gt 0 ] || exit 0
timeout "${COMPILE_REUSE_S:-100}" python benchmarks/compile_reuse.py --device cuda --shape 513,129 --batch 32 \
  --ratios 16,8 --steps 30 --sides whole-cold,shared-cold --out "$out" 2>&1 |
  tee "$out/compile_reuse.log" || true
