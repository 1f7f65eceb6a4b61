"""Profiles: what ``--profile cpu`` changes in a space, and what it leaves alone."""

from __future__ import annotations

from pathlib import Path

from raysearch.search.profiles import PROFILES
from raysearch.search.space import load_space, parse_space

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
CPU = PROFILES["cpu"]


def test_the_cpu_profile_sizes_the_ratio_search_for_a_cpu():
    space = CPU.apply(load_space(SPACES / "ratio.yaml"))
    assert space.name == "ratio-cpu" and space.trials == 4
    assert space.model["channels"] == [16, 32, 64, 128, 64]  # half of (32, 64, 128, 256, 128)
    assert (space.train["epochs"], space.train["lr"], space.train["patience"]) == (14, 0.003, 0)
    assert [p.name for p in space.params] == ["ratio"]  # still searched


def test_the_cpu_profile_scales_frequency_masks_to_its_32_bands():
    """augment.yaml fixes masks of up to 27 bins, sized for 128 mel bands or 513 STFT bins: on
    the profile's 32 bands that blanked most of a segment (results/augment)."""
    space = load_space(SPACES / "augment.yaml")
    assert space.train["freq_width"] == 27
    profiled = CPU.apply(space)
    assert profiled.train["freq_width"] == 7  # 27 x 32 / 128
    assert profiled.train["time_width"] == 20  # frames: the profile keeps 3 s segments
    assert profiled.raw["train"]["freq_width"] == 7  # what the experiment saves and resumes


def test_a_profile_never_changes_a_searched_setting():
    raw = load_space(SPACES / "augment.yaml").raw
    params = {**raw["params"], "freq_width": {"type": "int", "low": 8, "high": 27}}
    train = {k: v for k, v in raw["train"].items() if k != "freq_width"}
    space = parse_space({**raw, "train": train, "params": params}, "searched.yaml")
    profiled = CPU.apply(space)
    assert "freq_width" not in profiled.train
    assert next(p for p in profiled.params if p.name == "freq_width").high == 27
    assert CPU.apply(load_space(SPACES / "ratio.yaml")).train.get("freq_width", 0) == 0
