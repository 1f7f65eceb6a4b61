#!/usr/bin/env bash
# The GPU figures of issues 21 and 29 in one call of the `device` tool, to one deadline:
#
#   bash benchmarks/gpu_run.sh BUDGET_S
#
# BUDGET_S is the whole call (give the tool a timeout_s 10-15 s longer). Each stage takes a
# share of the time left when it starts, ends itself inside it (and is killed just after it if
# not), and writes its rows as it goes, so a stage cut short keeps what it measured and leaves
# the next stages their time. In order of what they are worth:
#   1. sides (gpu_bench.py): K trials on the GPU, segments/s over the window where every trial
#      is in steady state; today's default default:8:mps (select) first, then triton-conv1 at 8
#      (block 1's Triton pair), then K = 12, 16 and auto, each read against the first. A compiled side compiles once
#      first, so its trials' start-up is a search's after the warm-up. MPS that will not start:
#      the same sides without it, said in the log. [65 % of the time left]
#   2. step profile (gpu_step_profile.py): one training step per variant, the eager and
#      compiled kernel tables (which kernels the pooling path and conv1 leave). [70 % of what
#      is left then]
#   3. out-of-memory check (gpu_oom_check.py): a run past the GPU's memory ends in one line.
#   4. start-up of compiled trials (compile_reuse.py padded-processes): one compile, then
#      processes that load it. [the rest]
# Data: the shards of a search run just before on this machine ($WORK/shards, what
# gpu_search_run.sh leaves), else a set made here (CLIPS per genre x 30 s).
#
# What comes back (4 files): run.log (the machine, commit and git status, every stage's
# output), gpu_bench.md / gpu_bench.json (the sides), gpu_step_profile.md (the step table and
# the kernel tables).
#
# Here, first: bash ../shared/tools/device-pack; git rev-parse HEAD > .device-commit;
#   git status --short > .device-status  (carry [".devicepack", ".device-commit", ".device-status"])
# CPU rehearsal (small sizes, the same stages and limits): OUT=/tmp/dry DRY=1 bash benchmarks/gpu_run.sh 240
set -uo pipefail
budget=${1:?usage: gpu_run.sh BUDGET_S}
out=${OUT:?OUT must name the folder whose files come back}
deadline=$(($(date +%s) + budget))
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benchmarks/device_lib.sh
. "$here/device_lib.sh"
mkdir -p "$out"
work=${WORK:-/tmp/raysearch-gpu-search}
export PYTHONUNBUFFERED=1
if [ -z "${DRY:-}" ]; then
  shape=513,129 batch=32 steps=40 warmup=10 device=cuda clips=${CLIPS:-40} segments=4560
  sides=${SIDES:-default:8:mps,default:8:mps:triton-conv1,default:12:mps,default:16:mps,default:auto:mps}
  variants=eager:aten,default:aten,default:select,default:triton-conv1
  reuse_shape=513,129 min_side=60
else # a CPU rehearsal: the same calls at a size a CPU finishes (eager: no compile on 2 cores)
  shape=65,33 batch=4 steps=3 warmup=2 device=cpu clips=${CLIPS:-6} segments=32
  sides=${SIDES:-eager:2,eager:2:select,eager:auto}
  variants=eager:aten,eager:select,default:select
  reuse_shape=65,33 min_side=20
fi

# begin_stage NAME PERCENT: the stage's share of the time left (STAGE_T; STAGE_S, 10 s shorter,
# is the budget the stage's own program keeps to); status 1 (skipped, said) under 15 s.
# run_stage NAME COMMAND...: the command under a timeout of STAGE_T, its output in the log.
begin_stage() {
  STAGE_T=$(($(left) * $2 / 100))
  STAGE_S=$((STAGE_T - 10))
  if [ "$STAGE_T" -lt 15 ]; then
    log "stage $1: skipped ($STAGE_T s of the time left)"
    return 1
  fi
  log "stage $1: $STAGE_T s"
}
run_stage() {
  local name=$1
  shift
  timeout -k 5 "$STAGE_T" "$@" 2>&1 | tee -a "$out/run.log" >/dev/null
  local status=${PIPESTATUS[0]}
  [ "$status" = 0 ] || log "stage $name: exit $status$([ "$status" = 124 ] && echo ' (its share ran out)')"
}

log "gpu_run: budget ${budget} s${DRY:+, DRY (CPU rehearsal)}"
unpack_devicepack || { log "device pack did not unpack"; exit 2; }
record_machine "$work.machine.txt" && cat "$work.machine.txt" >>"$out/run.log"
head -n 1 "$work.machine.txt"
data=(--clips-per-genre "$clips" --duration 30)
[ -n "${DRY:-}" ] && data=(--clips-per-genre "$clips" --duration 6)
if [ -f "$work/shards/manifest.json" ]; then
  data=(--shards "$work/shards")
  log "data: the search's shards in $work/shards"
fi

if begin_stage sides 65; then
  run_stage sides python benchmarks/gpu_bench.py --out "$out" "${data[@]}" \
    --train-segments "$segments" --sides "$sides" --budget-s "$STAGE_S" --min-side-s "$min_side"
  # a bench cut off by its timeout leaves Ray's processes (and their GPU memory) behind; on
  # the lent machine nothing else runs Ray (never on a shared machine: DRY)
  [ -z "${DRY:-}" ] && python -m ray.scripts.scripts stop --force >/dev/null 2>&1
fi
if begin_stage "step profile" 70; then
  run_stage "step profile" python benchmarks/gpu_step_profile.py --out "$out" --no-json \
    --device "$device" --shape "$shape" --batch "$batch" --warmup "$warmup" --steps "$steps" \
    --variants "$variants" --profile "$variants" --rows 12 --budget-s "$STAGE_S"
fi
if begin_stage "out-of-memory check" 30; then
  run_stage "out-of-memory check" python benchmarks/gpu_oom_check.py
fi
if begin_stage "trials' start-up" 95; then
  run_stage "trials' start-up" python benchmarks/compile_reuse.py --device "$device" \
    --shape "$reuse_shape" --batch "$batch" --ratios 16,8,31.43 --steps 5 \
    --sides padded-processes
fi
log "done"
check_out || { log "OVER THE TOOL'S LIMITS: some files would not come back"; exit 1; }
