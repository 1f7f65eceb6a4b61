"""GPU demand an autoscaler sees, on Ray's own fake autoscaler: a head with no GPU and one worker
node type with ``GPU: 1`` and ``min_workers: 0``. ``python -m raysearch.tune`` started there
decides to use GPUs (the autoscaler can launch them), its trials ask for a GPU share, the
autoscaler launches the GPU node type, and the trials run there. The fake node has no CUDA: the
trials compute on its CPUs while their resource request stays a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.autoscaling_cluster import FakeAutoscalingCluster

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
# the GPU's memory declared as cluster/gpu.yaml does: resources.gpu: auto reads it before the
# node exists
GPU_NODE = {
    "resources": {"CPU": 1, "GPU": 1, "gpu_memory_gib": 22},
    "min_workers": 0,
    "max_workers": 1,
}


def _module(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=420
    )


def test_search_makes_the_autoscaler_launch_a_gpu_node(tmp_path):
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    from raysearch.results.records import records_from_experiment

    space = tmp_path / "gpu-demand.yaml"
    space.write_text(
        (SPACES / "smoke.yaml")
        .read_text()
        .replace("name: smoke", "name: gpu-demand")
        .replace("trials: 3", "trials: 2")
        .replace("  cpu: 1\n  gpu: 0.1", "  cpu: 0.5\n  gpu: auto")  # K from memory and CPUs
    )
    # The shards first, on a local Ray instance of their own: prepare's CPU work on the fake
    # cluster would make its autoscaler launch the GPU node type (its only one) before the search.
    plain = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    synthetic, shards = str(tmp_path / "synthetic"), str(tmp_path / "shards")
    made = _module(plain, "raysearch.synth", "--out", synthetic, "--clips-per-genre", "10",
                   "--duration", "6")  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    prepared = _module(plain, "raysearch.prepare", "--data", synthetic, "--out", shards,
                       "--num-cpus", "1")  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr[-2000:]

    with FakeAutoscalingCluster({"CPU": 1}, {"gpu_node": GPU_NODE}) as cluster:
        searched = _module(
            cluster.env,
            "raysearch.tune",
            "--space", str(space),
            "--shards", shards,
            "--storage", str(tmp_path / "storage"),
            "--results", str(tmp_path / "results"),
            "--address", cluster.address,
        )  # fmt: skip
        output = searched.stdout + searched.stderr
        assert searched.returncode == 0, output[-4000:]
        # decided before the first trial: no GPU now, one launchable, read from the autoscaler
        decided = "trials on GPUs (0 GPU(s) now, up to 1 from autoscaled node types [gpu_node]"
        assert decided in output, output[-4000:]
        assert str(cluster.config_file) in output
        # K before the GPU node is up: its declared memory fits many of these small trials,
        # its one CPU two of them at 0.5 CPU each
        packed = "resources.gpu: auto: 2 trials per GPU, bound by CPUs (22.0 GiB GPU"
        assert packed in output and "declared by the GPU nodes' gpu_memory_gib" in output
        assert "up to 2 at once" in output  # 0.5 GPU each on the one GPU the cluster can have
        assert "Adding 1 node(s) of type gpu_node" in output  # the autoscaler's own log line
        # no MPS daemon on this machine: GPU trials say so, the search once for their node
        assert output.count("run without CUDA MPS") == 1, output[-4000:]

    records = records_from_experiment(str(tmp_path / "storage" / "gpu-demand"))
    assert [r.status for r in records] == ["completed", "completed"]
    for record in records:
        assert record.last_result["node_id"] != FAKE_HEAD_NODE_ID  # on the launched node
        assert record.last_result["gpus_assigned"] == 1  # asked for and got a GPU share
        assert record.last_result["device"] == "cpu"  # ... with no CUDA behind it
        assert record.last_result["mps"].startswith("off: ")
    assert len(pd.read_csv(tmp_path / "results" / "leaderboard.csv")) == 2
    assert not cluster.cluster_pids(), "Ray processes left behind"
