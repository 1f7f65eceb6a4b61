#!/usr/bin/env bash
# The whole 50-trial ratio search on one GPU machine (issue 22), for the `device` tool.
#
# Here, first:  bash ../shared/tools/device-pack && git rev-parse HEAD > .device-commit
# Device call 1 (carry [".devicepack"], timeout_s 590):
#     bash benchmarks/gpu_search_run.sh
#   generates the synthetic GTZAN-size set (1,000 clips x 30 s) and its 513-bin STFT shards on
#   the machine's cores (timed, not counted), starts CUDA MPS, runs
#   `raysearch tune --space ratio` and stops it with SIGINT when the call's budget
#   (CALL_BUDGET_S, 540 s, inside the tool's 590 s) is near; everything to keep lands in $OUT
#   (see the end of this script).
# Device call 2, only if call 1 says "search not finished", made at once (the machine stays
#   warm ~30 s and keeps WORK on its disk):
#     RESUME=1 bash benchmarks/gpu_search_run.sh
#   resumes the search (`--resume`: finished trials stay, running ones go on from their last
#   checkpoint) and writes the same files. The search's wall time is then the sum of its own
#   running time over both calls (summary.json's wall_s, from raysearch_runs.json).
#
# CPU dry run of the same script (no device pack, a small set, a few trials):
#     OUT=/tmp/gss DEVICEPACK=0 CLIPS=6 DURATION=6 TRIALS=3 EPOCHS=2 SEARCH_LIMIT_S=300 \
#         bash benchmarks/gpu_search_run.sh
set -euo pipefail
out=${OUT:?OUT must name the folder whose files come back}
work=${WORK:-/tmp/raysearch-gpu-search}  # kept between the two calls on a warm machine
clips=${CLIPS:-100}                      # per genre: 100 x 10 genres = GTZAN's 1,000 clips
duration=${DURATION:-30}
space=${SPACE:-ratio}
trials_per_gpu=${TRIALS_PER_GPU:-auto}   # K from the GPU's memory (8: the best measured on an H100)
budget=${CALL_BUDGET_S:-540}             # the whole call; the search gets what data leaves
cores=$(nproc)
began=$(date +%s)
mkdir -p "$out" "$work"

if [ "${DEVICEPACK:-1}" = 1 ]; then
  mkdir -p /tmp/site
  [ -d /tmp/site/ray ] || tar xJf .devicepack/site.tar.xz -C /tmp/site
  chmod -R a+x /tmp/site/ray/core  # wheels unpacked with zipfile lose the executable bits
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 RAYSEARCH_CACHE=$work/cache
now() { date +%s.%N; }
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/run.log"; }

{
  echo "commit: $(cat .device-commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "call: ${RESUME:+resume}${RESUME:-first}; cores: $cores"
  python -c 'import platform, ray, torch; print("python", platform.python_version(), "torch", torch.__version__, "ray", ray.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  nvidia-smi 2>&1 || echo "no nvidia-smi"
} >"$out/machine.txt" 2>&1

if [ -z "${RESUME:-}" ]; then
  t0=$(now)
  python -m raysearch.synth --out "$work/gtzan" --clips-per-genre "$clips" --duration "$duration" \
    --workers "$cores" 2>&1 | tail -n 2 | tee -a "$out/run.log"
  t1=$(now)
  python -m raysearch.prepare --data "$work/gtzan" --out "$work/shards" --num-cpus "$cores" \
    2>&1 | tail -n 4 | tee -a "$out/run.log"
  t2=$(now)
  python -c "import json, sys; json.dump({'synth_s': round($t1 - $t0, 1), 'prepare_s': round($t2 - $t1, 1), 'clips': $clips * 10, 'duration_s': $duration, 'cores': $cores}, open(sys.argv[1], 'w'), indent=1)" "$out/data_timings.json"
  log "data: synth $(python -c "print(round($t1 - $t0))") s, prepare $(python -c "print(round($t2 - $t1))") s"
fi

mps=0
if command -v nvidia-cuda-mps-control >/dev/null && nvidia-smi >/dev/null 2>&1; then
  if nvidia-cuda-mps-control -d 2>>"$out/run.log" || echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1; then
    mps=1
    log "CUDA MPS daemon running"
  else
    log "CUDA MPS did not start: trials share the GPU by time-slicing"
  fi
fi

# SIGINT to the search 45 s before the budget ends: its state save and the copies below
limit=${SEARCH_LIMIT_S:-$((budget - ($(date +%s) - began) - 45))}
args=(--shards "$work/shards" --storage "$work/storage" --results "$work/results" --num-cpus "$cores")
if [ -n "${RESUME:-}" ]; then
  args+=(--resume --name "$space")
else
  args+=(--space "$space" --trials-per-gpu "$trials_per_gpu")
  [ -n "${TRIALS:-}" ] && args+=(--trials "$TRIALS")
  [ -n "${EPOCHS:-}" ] && args+=(--epochs "$EPOCHS")
fi
echo "python -m raysearch.tune ${args[*]}" >>"$out/command.txt"
log "search: python -m raysearch.tune ${args[*]} (SIGINT after $limit s)"
set +e
timeout -s INT -k 40 "$limit" python -m raysearch.tune "${args[@]}" >>"$out/search.log" 2>&1
status=$?
set -e
if [ "$status" = 0 ]; then
  log "search finished"
else
  log "search not finished (exit $status): call again at once with RESUME=1"
fi
[ "$mps" = 1 ] && { echo quit | nvidia-cuda-mps-control || true; }

# what to keep: the results folder (leaderboard, table 5.2, plots, summary.json), the
# experiment's own records (Optuna journal, driver runs, the space as run) and every trial's
# result.json / params.json (not the checkpoints: each trial keeps a model.pt of several MB)
experiment=$work/storage/$space
mkdir -p "$out/results" "$out/experiment"
cp -r "$work/results/." "$out/results/" 2>/dev/null || true
for name in optuna.journal raysearch_runs.json raysearch_experiment.json; do
  cp "$experiment/$name" "$out/experiment/" 2>/dev/null || true
done
(cd "$experiment" && find . -maxdepth 2 \( -name result.json -o -name params.json \) -print0 |
  tar czf "$out/experiment/trials.tar.gz" --null -T -) 2>/dev/null || true
echo "$status" >"$out/search_exit_status"
