# Helpers for the scripts the `device` tool runs on a lent GPU machine (gpu_run.sh,
# gpu_search_run.sh); sourced, never run. What the tool gives a call (docs: the tool's README):
# 10 minutes a command, at most 8 files back from $OUT, no deeper than $OUT/a/b/file, 15
# minutes of machine time in all. So every script here works to one deadline, writes its
# files as it goes and ends by checking $OUT against those limits.
#
# Before sourcing: out (the folder that comes back), deadline (epoch seconds the script must
# have ended by). DRY=1: a CPU rehearsal (no device pack, no GPU).

OUT_FILES_MAX=${OUT_FILES_MAX:-8}  # the tool's limits on what comes back
OUT_DEPTH_MAX=${OUT_DEPTH_MAX:-2}  # folders below $OUT

now_s() { date +%s; }
left() { echo $((deadline - $(now_s))); }  # seconds to the deadline (negative once past it)
log() { echo "[$(date -u +%H:%M:%S) | $(left) s left] $*" | tee -a "$out/run.log"; }

# the packages the image lacks (Ray, Optuna, librosa), unpacked once per machine
unpack_devicepack() {
  [ -n "${DRY:-}" ] && return 0
  if [ ! -d /tmp/site/ray ]; then
    mkdir -p /tmp/site && tar xJf .devicepack/site.tar.xz -C /tmp/site || return 1
    chmod -R a+x /tmp/site/ray/core # wheels unpacked with zipfile lose the executable bits
  fi
  export PYTHONPATH=/tmp/site:$PWD
}

# FILE: the commit and tree that ran (carried .device-commit / .device-status when the
# device's copy has no usable .git), versions, the GPU
record_machine() {
  {
    echo "commit: $(cat .device-commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "git status --short (empty: the commit as it is):"
    cat .device-status 2>/dev/null || git status --short 2>/dev/null || echo "(unknown)"
    echo "cores: $(nproc); memory: $(awk '/MemTotal/ {print $2 / 1048576 " GiB"}' /proc/meminfo)"
    python -c 'import platform, torch; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
    python -c 'import ray, optuna; print("ray", ray.__version__, "optuna", optuna.__version__)'
    nvidia-smi 2>&1 || echo "no nvidia-smi"
  } >"$1" 2>&1
}

# CUDA MPS, so that trials' kernels overlap; MPS=1 when its daemon runs, MPS=0 (said in the
# log) when it is missing or will not start: the same work then runs time-sliced
start_mps() {
  MPS=0
  if [ -n "${DRY:-}" ] || ! command -v nvidia-cuda-mps-control >/dev/null; then
    log "CUDA MPS: not available here; trials share the GPU by time-slicing"
    return 0
  fi
  if echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1 ||
    nvidia-cuda-mps-control -d >>"$out/run.log" 2>&1; then
    MPS=1
    log "CUDA MPS daemon running"
  else
    log "CUDA MPS did not start: trials share the GPU by time-slicing (same sides, no MPS)"
  fi
}

stop_mps() { [ "${MPS:-0}" = 1 ] && { echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true; }; MPS=0; }

# whether $out holds what the tool brings back: at most OUT_FILES_MAX files, none deeper than
# OUT_DEPTH_MAX folders; said in the log either way, status 1 when over
check_out() {
  local files depth
  files=$(find "$out" -type f | wc -l)
  depth=$(find "$out" -mindepth 1 -type f -printf '%d\n' | sort -n | tail -n 1)
  depth=$((${depth:-1} - 1))
  log "\$OUT: $files file(s) (at most $OUT_FILES_MAX come back), $depth folder(s) deep (at most $OUT_DEPTH_MAX)"
  find "$out" -type f -printf '  %P %s bytes\n' | sort | tee -a "$out/run.log"
  [ "$files" -le "$OUT_FILES_MAX" ] && [ "$depth" -le "$OUT_DEPTH_MAX" ]
}
