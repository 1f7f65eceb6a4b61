"""Whether the GPU trials of a search are CUDA MPS clients, and the driver saying once per node
when they are not.

A CUDA process becomes an MPS client when, at CUDA start-up, it finds the MPS control daemon's
pipe in ``$CUDA_MPS_PIPE_DIRECTORY`` (default ``/tmp/nvidia-mps``); otherwise it runs as it
would without MPS, silently (NVIDIA's ``nvidia-cuda-mps-control`` manual). cluster/gpu.yaml's
GPU workers start the daemon with ``cluster/start_mps.sh``, which writes what happened to
:data:`STATUS_FILE`; a GPU trial reports ``mps`` (``on``, or ``off: <why>``) with every result,
and :class:`MpsNotice` prints one line per node whose trials run without it (the trials then
share the GPU by time-slicing: slower, not wrong). Measured effect: docs/performance.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from ray.tune import Callback

STATUS_FILE = "/tmp/raysearch-mps.status"  # cluster/start_mps.sh writes its outcome here
DEFAULT_PIPE_DIRECTORY = "/tmp/nvidia-mps"  # CUDA's, when CUDA_MPS_PIPE_DIRECTORY is unset


def mps_state(environ: Mapping[str, str] = os.environ, status_file: str = STATUS_FILE) -> str:
    """``on`` when this process's CUDA would find an MPS control daemon, else ``off: <why>``
    (the start script's own words when it left them)."""
    pipe = environ.get("CUDA_MPS_PIPE_DIRECTORY") or DEFAULT_PIPE_DIRECTORY
    if os.path.exists(os.path.join(pipe, "control")):
        return "on"
    try:
        with open(status_file) as f:
            why = f.readline().strip()
    except OSError:
        why = ""
    return f"off: {why or f'no MPS control daemon ({pipe}/control does not exist)'}"


def with_mps_state(report: Callable[[dict, str | None], None]):
    """``report`` with this process's :func:`mps_state` added to every result as ``mps``."""
    state = mps_state()

    def report_with_state(metrics: dict, checkpoint_dir: str | None) -> None:
        report({**metrics, "mps": state}, checkpoint_dir)

    return report_with_state


class MpsNotice(Callback):
    """Print once per node that its trials run without CUDA MPS, and why."""

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.told: set[str] = set()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        state, node = str(result.get("mps", "on")), str(result.get("node_ip", "?"))
        if state.startswith("off") and node not in self.told:
            self.told.add(node)
            self.say(
                f"trials on node {node} run without CUDA MPS ({state.removeprefix('off: ')}): "
                "the trials sharing its GPU take turns instead of overlapping"
            )
