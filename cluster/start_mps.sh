#!/usr/bin/env bash
# Start the CUDA MPS control daemon on a GPU worker before Ray (cluster/gpu.yaml's
# worker_start_ray_commands), so the trials sharing the GPU become MPS clients; say what
# happened, and never keep the node from joining the cluster (without MPS the trials still
# run, taking turns on the GPU).
#
# The outcome goes to stderr (shown by `ray up` and kept in the head's autoscaler log,
# /tmp/ray/session_latest/logs/monitor.*), to syslog where there is one, and, one line, to
# $RAYSEARCH_MPS_STATUS (default /tmp/raysearch-mps.status, inside the container), which the
# search's GPU trials read to say why they run without MPS (raysearch/search/mps.py).
set -u
status_file="${RAYSEARCH_MPS_STATUS:-/tmp/raysearch-mps.status}"
pipe_dir="${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}"  # CUDA's default: the trials find it
# the daemon's log; its default, /var/log/nvidia-mps, is not writable by the image's user
export CUDA_MPS_LOG_DIRECTORY="${CUDA_MPS_LOG_DIRECTORY:-/tmp/nvidia-mps-log}"
mkdir -p "$CUDA_MPS_LOG_DIRECTORY"

report() {
  printf '%s\n' "$1" >"$status_file"
  printf 'raysearch: CUDA MPS %s\n' "$1" >&2
  logger -t raysearch "CUDA MPS $1" 2>/dev/null || true
}

if ! command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  report "not started: nvidia-cuda-mps-control is not on PATH (the NVIDIA container runtime mounts it into GPU containers with the compute capability)"
  exit 0
fi
if [ -e "$pipe_dir/control" ]; then
  report "running (its control pipe $pipe_dir/control was there already)"
  exit 0
fi
if output=$(nvidia-cuda-mps-control -d 2>&1); then
  for _ in $(seq 20); do
    if [ -e "$pipe_dir/control" ]; then
      report "started (control pipe $pipe_dir/control)"
      exit 0
    fi
    sleep 0.25
  done
  report "not started: nvidia-cuda-mps-control -d returned but left no $pipe_dir/control in 5 s"
else
  report "not started: nvidia-cuda-mps-control -d failed: $(printf '%s' "${output:-no message}" | tr '\n' ' ')"
fi
exit 0
