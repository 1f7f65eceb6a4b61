"""Two searches started side by side on one machine, each on a local Ray instance of its own,
both complete, and neither logs a placement-group cleaner error: one-worker trials hold no Ray
Train placement group (Ray Train 2.60's cleaner, looking for its cluster among the machine's
processes, failed with ``Found multiple active Ray instances`` when two ran)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def test_two_searches_side_by_side_both_complete_cleanly(tmp_path):
    import ray

    assert not ray.is_initialized(), "another Ray instance in this process"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def module(*args: str, **kwargs):
        return [sys.executable, "-m", *args], {"env": env, "text": True, **kwargs}

    synthetic, shards = str(tmp_path / "synthetic"), str(tmp_path / "shards")
    for args in (
        ("raysearch.synth", "--out", synthetic, "--clips-per-genre", "10", "--duration", "6"),
        ("raysearch.prepare", "--data", synthetic, "--out", shards, "--num-cpus", "1"),
    ):
        command, kwargs = module(*args, capture_output=True, timeout=300)
        done = subprocess.run(command, **kwargs)
        assert done.returncode == 0, done.stderr[-2000:]

    searches = []
    for name in ("left", "right"):
        log = open(tmp_path / f"{name}.log", "w")
        command, kwargs = module(
            "raysearch.tune", "--space", "smoke", "--name", name, "--trials", "2",
            "--shards", shards, "--storage", str(tmp_path / "storage"),
            "--results", str(tmp_path / name), "--num-cpus", "1",
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        searches.append((name, subprocess.Popen(command, **kwargs)))
        time.sleep(10)  # the second starts while the first is running its trials
    for name, search in searches:
        search.wait(timeout=600)
        log = (tmp_path / f"{name}.log").read_text()
        assert search.returncode == 0, log[-3000:]
        assert "multiple active Ray instances" not in log
        assert "PlacementGroupCleaner" not in log
        board = pd.read_csv(tmp_path / name / "leaderboard.csv")
        assert list(board["status"]) == ["completed", "completed"]
