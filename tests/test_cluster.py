"""GPU demand (raysearch.search.gpu_demand): which node types can bring GPUs, and the decision
whether trials ask for them, without Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysearch.search.gpu_demand import (
    GpuCapacity,
    GpuUnavailable,
    launchable_gpus,
    resolve_use_gpu,
)

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"


def test_the_shipped_gpu_cluster_can_launch_its_gpu_workers():
    config = yaml.safe_load((CLUSTER / "gpu.yaml").read_text())
    gpus, types = launchable_gpus(config)
    assert types == ("ray.worker.gpu",)
    assert gpus == config["available_node_types"]["ray.worker.gpu"]["max_workers"]


def test_launchable_gpus_counts_gpu_types_only_and_caps_by_the_cluster():
    config = {
        "max_workers": 3,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 0},  # never launched
            "cpu": {"resources": {"CPU": 16}, "max_workers": 10},
            "a100x8": {"resources": {"CPU": 96, "GPU": 8}, "max_workers": 5},
            "none": {"resources": {"GPU": 1}, "max_workers": 0},
        },
    }
    assert launchable_gpus(config) == (24.0, ("a100x8",))
    assert launchable_gpus({}) == (0.0, ())


def test_default_uses_gpus_present_or_launchable():
    assert resolve_use_gpu(None, capacity=GpuCapacity(0, 0)) is False
    assert resolve_use_gpu(None, capacity=GpuCapacity(1, 0)) is True
    assert resolve_use_gpu(None, capacity=GpuCapacity(0, 4, ("gpu",), "x.yaml")) is True
    assert resolve_use_gpu(False, capacity=GpuCapacity(2, 4)) is False


def test_gpu_where_none_can_come_is_a_one_line_error():
    with pytest.raises(GpuUnavailable) as error:
        resolve_use_gpu(True, capacity=GpuCapacity(0, 0))
    message = str(error.value)
    assert "\n" not in message and message.startswith("--gpu: ")
    assert "no GPU" in message
