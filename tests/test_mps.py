"""CUDA MPS on a GPU worker: ``cluster/start_mps.sh`` reports a daemon that did not start (this
machine has no NVIDIA driver, so the binary is really absent; a failing one is a two-line
stand-in on PATH) instead of swallowing it, and never fails the node's start; a trial's
``mps`` state and the driver's one line per node (:mod:`raysearch.search.mps`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from raysearch.search.mps import MpsNotice, mps_state

SCRIPT = Path(__file__).resolve().parent.parent / "cluster" / "start_mps.sh"


def _start(tmp_path: Path, path: str) -> tuple[subprocess.CompletedProcess, str]:
    status = tmp_path / "mps.status"
    env = {"PATH": path, "RAYSEARCH_MPS_STATUS": str(status), "HOME": str(tmp_path),
           "CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(tmp_path / "log")}  # fmt: skip
    done = subprocess.run(
        [shutil.which("bash"), str(SCRIPT)], env=env, capture_output=True, text=True
    )
    return done, status.read_text()


def _tools(tmp_path: Path, daemon: str | None) -> str:
    """A PATH with the shell tools the script uses and, given, a ``nvidia-cuda-mps-control``."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("mkdir", "printf", "tr", "seq", "sleep", "logger"):
        if shutil.which(name):
            os.symlink(shutil.which(name), tools / name)
    if daemon is not None:
        (tools / "nvidia-cuda-mps-control").write_text(f"#!/bin/bash\n{daemon}\n")
        (tools / "nvidia-cuda-mps-control").chmod(0o755)
    return str(tools)


def test_no_mps_binary_is_reported_and_the_node_still_starts(tmp_path):
    done, status = _start(tmp_path, _tools(tmp_path, None))
    assert done.returncode == 0  # Ray starts next: trials run, without MPS
    assert status.startswith("not started: nvidia-cuda-mps-control is not on PATH")
    assert done.stderr == f"raysearch: CUDA MPS {status}"


def test_a_daemon_that_fails_is_reported_with_its_message(tmp_path):
    fails = 'echo "An instance of this daemon is already running" >&2; exit 1'
    done, status = _start(tmp_path, _tools(tmp_path, fails))
    assert done.returncode == 0
    assert status == (
        "not started: nvidia-cuda-mps-control -d failed: "
        "An instance of this daemon is already running\n"
    )
    assert "raysearch: CUDA MPS not started" in done.stderr


def test_a_daemon_that_starts_is_found_by_its_pipe(tmp_path):
    starts = 'mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" && : > "$CUDA_MPS_PIPE_DIRECTORY/control"'
    path = _tools(tmp_path, starts)
    done, status = _start(tmp_path, path)
    assert done.returncode == 0
    assert status == f"started (control pipe {tmp_path}/pipe/control)\n"
    _, status = _start(tmp_path, path)  # a second `ray up`: the daemon is there
    assert status.startswith("running")


def test_a_trial_sees_mps_by_the_daemons_pipe(tmp_path):
    status = tmp_path / "mps.status"
    environ = {"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "pipe")}
    assert mps_state(environ, str(status)) == (
        f"off: no MPS control daemon ({tmp_path}/pipe/control does not exist)"
    )
    status.write_text("not started: nvidia-cuda-mps-control -d failed: boom\n")
    assert (
        mps_state(environ, str(status))
        == "off: not started: nvidia-cuda-mps-control -d failed: boom"
    )
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "control").touch()
    assert mps_state(environ, str(status)) == "on"


def test_the_driver_says_it_once_per_node():
    said: list[str] = []
    notice = MpsNotice(say=said.append)
    off = {"mps": "off: not started: boom", "node_ip": "10.0.0.7"}
    for result in (off, off, {**off, "mps": "on", "node_ip": "10.0.0.8"}, off):
        notice.on_trial_result(0, [], None, result)
    assert said == [
        "trials on node 10.0.0.7 run without CUDA MPS (not started: boom): the trials sharing "
        "its GPU take turns instead of overlapping"
    ]
    notice.on_trial_result(0, [], None, {**off, "node_ip": "10.0.0.9"})
    assert len(said) == 2
    notice.on_trial_result(0, [], None, {"node_ip": "10.0.0.10"})  # a CPU trial: no state
    assert len(said) == 2
