"""resources.gpu: auto (raysearch.search.gpu_share): K for a space on its shards, from the GPU
memory the cluster's node types declare, and the one line when no memory can be found. The
cluster path end to end, on Ray's fake autoscaler: tests/test_gpu_demand.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from raysearch.data import GENRES
from raysearch.search.gpu_demand import (
    GpuCapacity,
    declared_gpu_sizes,
    launchable_gpus,
    node_type_resources,
)
from raysearch.search.gpu_share import GpuMemoryUnknown, decide_gpu_share, largest_trial
from raysearch.search.packing import Splits
from raysearch.search.space import AUTO, load_space, parse_space
from raysearch.training.data import model_config_for

REPO = Path(__file__).resolve().parent.parent
SPACES = REPO / "search_spaces"


@pytest.fixture
def gtzan_sized(tmp_path) -> str:
    """A shard folder's manifest for GTZAN's 1,000 clips as STFT segments (what the GPU
    arithmetic reads: the shape and the segment counts; no segments are read)."""
    manifest = {
        "shape": [513, 129],
        "labels": list(GENRES),
        "train_stats": {"mean": -40.0, "std": 20.0},
        "counts": {"segments": {"train": 11_400, "val": 1_900, "test": 5_700}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return str(tmp_path)


def shipped_cluster() -> GpuCapacity:
    """What cluster/gpu.yaml's autoscaler offers before any GPU node is up."""
    config = yaml.safe_load((REPO / "cluster" / "gpu.yaml").read_text())
    launchable, types = launchable_gpus(config)
    sizes = declared_gpu_sizes(node_type_resources(config))
    return GpuCapacity(0.0, launchable, types, "cluster/gpu.yaml", *sizes)


def test_the_shipped_cluster_packs_four_report_sized_trials_per_a10g(gtzan_sized):
    """Compiled trials with kernels auto (select): 4.50 GiB a trial, 4 in the A10G's 22 GiB
    (3 with ATen's kernels, 5.36 GiB: docs/performance.md)."""
    space = load_space(SPACES / "ratio.yaml")
    assert space.resources.gpu == AUTO
    packed, line = decide_gpu_share(space, gtzan_sized, shipped_cluster())
    assert packed.resources.gpu == pytest.approx(1 / 4)
    assert "4 trials per GPU, bound by memory (22.0 GiB GPU" in line
    assert line.endswith("GPU memory: declared by the GPU nodes' gpu_memory_gib")
    assert packed.raw == space.raw  # saved with auto: a resumed search decides again
    model, train = packed.configs_for({"ratio": 16.0})
    assert train.gpus_per_worker == pytest.approx(1 / 4)


def test_node_cpus_bound_k_for_a_small_network(gtzan_sized):
    mel = json.loads((Path(gtzan_sized) / "manifest.json").read_text())
    mel["shape"] = [32, 129]
    (Path(gtzan_sized) / "manifest.json").write_text(json.dumps(mel))
    capacity = GpuCapacity(0.0, 4.0, ("gpu",), "test", gpu_memory_gib=79, cpus_per_gpu=8)
    packed, line = decide_gpu_share(load_space(SPACES / "ratio.yaml"), gtzan_sized, capacity)
    assert packed.resources.gpu == pytest.approx(1 / 8) and "bound by CPUs" in line


def test_a_space_is_packed_for_its_largest_network(gtzan_sized):
    space = load_space(SPACES / "channels.yaml")
    base = model_config_for(gtzan_sized)
    splits = Splits(11_400, 1_900, 5_700)
    largest = largest_trial(space, base, splits)
    param = next(p for p in space.params if p.name == "channels")
    each = []
    for choice in param.choices:
        raw = {k: v for k, v in space.raw.items() if k != "initial_points"}
        raw["params"] = {"width": space.raw["params"]["width"]}
        raw["model"] = {**raw["model"], "channels": list(choice)}
        each.append(largest_trial(parse_space(raw, "fixed.yaml"), base, splits).total)
    assert largest.total == max(each) and len(set(each)) == len(each)


def test_a_number_in_the_space_is_left_alone(gtzan_sized):
    space = load_space(SPACES / "ratio.yaml").with_overrides(trials_per_gpu=2)
    assert decide_gpu_share(space, gtzan_sized, shipped_cluster()) == (space, "")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's GPU answers")
def test_without_a_gpu_or_a_declared_memory_the_search_says_what_to_declare(gtzan_sized):
    nothing = GpuCapacity(0.0, 2.0, ("gpu",), "test")
    with pytest.raises(GpuMemoryUnknown) as failure:
        decide_gpu_share(load_space(SPACES / "ratio.yaml"), gtzan_sized, nothing)
    message = str(failure.value)
    assert "\n" not in message and "gpu_memory_gib" in message and "--trials-per-gpu K" in message
