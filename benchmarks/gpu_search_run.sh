#!/usr/bin/env bash
# The whole 50-trial ratio search on one GPU machine (issues 22, 30), for the `device` tool.
#
#   bash benchmarks/gpu_search_run.sh BUDGET_S            # call 1: data, then the search
#   bash benchmarks/gpu_search_run.sh BUDGET_S resume     # call 2, at once, if call 1 says so
#
# BUDGET_S is the whole call: everything, the copy into $OUT included, ends by then (give the
# tool a timeout_s 10-15 s longer). Call 1 generates the synthetic GTZAN-size set (1,000 clips
# x 30 s) and its 513-bin STFT shards on the machine's cores (timed, reported beside the
# search, not in it), starts CUDA MPS (or says it could not), and runs
# `raysearch tune --space ratio` (the space unchanged: 50 trials, TPE, ASHA, 30 epochs,
# gpu: auto) with a SIGINT early enough for the search to save its state and for the archive
# to be written. A second call resumes it (`--resume`) on the same warm machine with whatever
# budget is left of the lease; it first checks that call 1's folder is still there (a fresh
# machine has none) and says so if not. The search runs without the classical baseline and
# the ensemble (a SIGINT could land inside them); once the search is finished, both are made
# with the time left and the results rebuilt with them, or the log says they were left out.
#
# What comes back (4 files of the tool's 8; 4 more in bench/ when a finished search leaves
# time for gpu_run.sh's sides and kernel tables, BENCH_MIN_S = 90 s or more):
#   search.tar.gz   exactly what is to be committed: results/ (leaderboard, table 5.2, plots,
#                   summary.json), experiment/ (Optuna journal, driver runs, the space as run,
#                   every trial's result.json and params.json; no checkpoints), search.log,
#                   machine.txt (commit, git status, versions, nvidia-smi), command.txt,
#                   data_timings.json
#   summary.json, leaderboard.md   the search's summary, readable without unpacking
#   run.log         this script's own lines, each with the seconds left
#
# Here, first: bash ../shared/tools/device-pack; git rev-parse HEAD > .device-commit;
#   git status --short > .device-status   (both in .git/info/exclude; carry them and .devicepack)
# CPU rehearsal (no GPU, a small set, a few trials, the same stages and limits):
#   OUT=/tmp/gss DRY=1 bash benchmarks/gpu_search_run.sh 200
#   OUT=/tmp/gss2 DRY=1 bash benchmarks/gpu_search_run.sh 150 resume
set -uo pipefail
budget=${1:?usage: gpu_search_run.sh BUDGET_S [resume]}
call=${2:-first}
out=${OUT:?OUT must name the folder whose files come back}
deadline=$(($(date +%s) + budget))
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benchmarks/device_lib.sh
. "$here/device_lib.sh"
mkdir -p "$out"

work=${WORK:-/tmp/raysearch-gpu-search} # kept between the two calls on a warm machine
space=${SPACE:-ratio}
if [ -n "${DRY:-}" ]; then # a CPU rehearsal: a set and a search a CPU finishes
  clips=${CLIPS:-6} duration=${DURATION:-6} trials=${TRIALS:-3} epochs=${EPOCHS:-2}
else
  clips=${CLIPS:-100} duration=${DURATION:-30} trials=${TRIALS:-} epochs=${EPOCHS:-}
fi
KILL_WINDOW_S=${KILL_WINDOW_S:-40} # after the SIGINT: Tune saves, the results are written
PACK_S=${PACK_S:-15}               # the archive and the copies into $OUT
cores=$(nproc)
export PYTHONUNBUFFERED=1 RAYSEARCH_CACHE=$work/cache
experiment=$work/storage/$space

pack() { # everything to keep, from whatever the stages left
  local stage=$work/pack
  rm -rf "$stage" && mkdir -p "$stage/experiment"
  cp -r "$work/results" "$stage/results" 2>/dev/null
  for name in optuna.journal raysearch_experiment.json _raysearch/runs.json \
    _raysearch/ensemble.json _raysearch/network_cost.json; do
    cp "$experiment/$name" "$stage/experiment/" 2>/dev/null
  done
  if [ -d "$experiment" ]; then
    (cd "$experiment" && find . -maxdepth 2 \( -name result.json -o -name params.json \
      -o -name error.txt \) -print0 | tar cf - --null -T - 2>/dev/null) |
      tar xf - -C "$stage/experiment" 2>/dev/null
  fi
  for name in search.log machine.txt command.txt data_timings.json; do
    cp "$work/$name" "$stage/" 2>/dev/null
  done
  tar czf "$out/search.tar.gz" -C "$stage" .
  log "packed: search.tar.gz ($(du -h "$out/search.tar.gz" | cut -f1))"
  for name in summary.json leaderboard.md; do # or a line that says why there is none
    cp "$work/results/$name" "$out/" 2>/dev/null || {
      log "no $name: the search wrote no results (see run.log)"
      [ "$name" = summary.json ] && echo '{"search": null, "why": "no results: see run.log"}' >"$out/$name"
      [ "$name" = leaderboard.md ] && echo "No results: the search did not report a trial (run.log says why)." >"$out/$name"
    }
  done
}

finish() {
  stop_mps
  pack
  check_out || { log "OVER THE TOOL'S LIMITS: some files would not come back"; return 1; }
}

mkdir -p "$work"
log "call: $call, budget ${budget} s, cores $cores${DRY:+, DRY (CPU rehearsal)}"
unpack_devicepack || { log "device pack did not unpack"; exit 2; }
record_machine "$work/machine.txt"
head -n 1 "$work/machine.txt" | tee -a "$out/run.log"
grep -m1 -E "NVIDIA (H|A|L)[0-9]+" "$work/machine.txt" | tee -a "$out/run.log"

if [ "$call" = resume ]; then
  if [ ! -f "$experiment/tuner.pkl" ]; then
    log "nothing to resume: $experiment is not here (a fresh machine: the first call's work"
    log "folder went with the machine it ran on); start again with a first call"
    check_out
    exit 3
  fi
  log "resuming the search in $experiment"
else
  if [ -f "$work/shards/manifest.json" ]; then
    log "data: shards already in $work/shards (kept from an earlier call)"
  else
    t0=$(now_s)
    python -m raysearch.synth --out "$work/gtzan" --clips-per-genre "$clips" \
      --duration "$duration" --workers "$cores" 2>&1 | tail -n 2 | tee -a "$out/run.log"
    t1=$(now_s)
    python -m raysearch.prepare --data "$work/gtzan" --out "$work/shards" --num-cpus "$cores" \
      2>&1 | tail -n 3 | tee -a "$out/run.log"
    t2=$(now_s)
    printf '{"synth_s": %d, "prepare_s": %d, "clips": %d, "duration_s": %s, "cores": %d}\n' \
      $((t1 - t0)) $((t2 - t1)) $((clips * 10)) "$duration" "$cores" >"$work/data_timings.json"
    log "data: $((clips * 10)) clips x $duration s generated in $((t1 - t0)) s, prepared in $((t2 - t1)) s"
    [ -f "$work/shards/manifest.json" ] || { log "no shards: stopping"; finish; exit 2; }
  fi
fi

start_mps
args=(--shards "$work/shards" --storage "$work/storage" --results "$work/results"
  --num-cpus "$cores" --no-baseline --no-ensemble)
if [ "$call" = resume ]; then
  args+=(--resume --name "$space")
else
  args+=(--space "$space")
  [ -n "${TRIALS_PER_GPU:-}" ] && args+=(--trials-per-gpu "$TRIALS_PER_GPU")
  [ -n "$trials" ] && args+=(--trials "$trials")
  [ -n "$epochs" ] && args+=(--epochs "$epochs")
fi
limit=$(($(left) - KILL_WINDOW_S - PACK_S))
status=none
if [ "$limit" -lt 20 ]; then
  log "no time left for the search ($limit s): not started"
else
  echo "python -m raysearch.tune ${args[*]}   # call $call, SIGINT after $limit s" >>"$work/command.txt"
  log "search: python -m raysearch.tune ${args[*]} (SIGINT after $limit s)"
  echo "===== call $call, $(date -u +%FT%TZ) =====" >>"$work/search.log"
  timeout -s INT -k "$KILL_WINDOW_S" "$limit" python -m raysearch.tune "${args[@]}" \
    >>"$work/search.log" 2>&1
  status=$?
  # this call's summary lines (search.log holds every call's output)
  awk '/^===== call /{n=NR} {line[NR]=$0} END{for (i=n; i<=NR; i++) print line[i]}' \
    "$work/search.log" | grep -E "^- (Wall|Trials|Not finished|Trial-epochs|Start-up|Compile|GPU|Best)" |
    tee -a "$out/run.log"
fi
stop_mps
case $status in
0)
  log "search finished"
  if [ "$(left)" -gt $((PACK_S + 45)) ]; then # the baseline, then the results with it
    timeout $(($(left) - PACK_S - 10)) sh -c "python -m raysearch.baseline --shards '$work/shards' &&
      python -m raysearch.leaderboard '$experiment' --results '$work/results'" \
      >>"$work/search.log" 2>&1 && log "classical baseline computed; results rebuilt with it" ||
      log "classical baseline not finished in the time left: results without it"
  else
    log "classical baseline left out: $(left) s left (raysearch baseline --shards SHARDS)"
  fi
  # the ensemble of the completed networks and their CPU times (seconds a network shape, on
  # one thread), after the search like the baseline, and only with the time for it
  if [ "$(left)" -gt $((PACK_S + 60)) ]; then
    timeout $(($(left) - PACK_S - 10)) python -m raysearch.ensemble "$experiment" \
      --results "$work/results" >>"$work/search.log" 2>&1 &&
      log "ensemble built; results rebuilt with it" ||
      log "ensemble not finished in the time left: results without it"
  else
    log "ensemble left out: $(left) s left (raysearch ensemble EXPERIMENT)"
  fi
  ;;
none) ;;
*) log "search not finished (exit $status): call again at once with 'resume' and the budget left" ;;
esac
finish || exit 1
# the time a finished search leaves: the sides and kernel tables of gpu_run.sh on the same
# machine and shards (4 more files, in $OUT/bench); THEN_BENCH=0 leaves it out
if [ "$status" = 0 ] && [ "${THEN_BENCH:-1}" = 1 ] && [ "$(left)" -ge "${BENCH_MIN_S:-90}" ]; then
  log "then gpu_run.sh with the $(( $(left) - 5 )) s left"
  OUT=$out/bench WORK=$work bash "$here/gpu_run.sh" $(($(left) - 5)) >/dev/null
  check_out || exit 1
fi
