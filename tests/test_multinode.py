"""A real multi-node run on one machine: a head and two worker nodes started with ``ray start``
(each with its own CPU count and custom resource, token authentication on, loopback only),
the smoke search against the cluster's address, trials on more than one node, and one worker
node killed mid-search: the search still completes with every trial accounted for."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.local_cluster import LocalCluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 for a network namespace"),
]
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
TRIALS = 6


def _records(storage: Path) -> list:
    from raysearch.results.records import records_from_experiment

    return records_from_experiment(str(storage / "multinode"))


def _records_so_far(storage: Path) -> list:
    """The trials while the search runs: none until Tune has written its first snapshot."""
    if not list((storage / "multinode").glob("experiment_state-*.json")):
        return []
    try:
        return _records(storage)
    except ValueError:  # a snapshot being replaced as we read it; the next poll sees it
        return []


def test_search_survives_a_worker_node_loss(tmp_path):
    import ray

    assert not ray.is_initialized(), "another Ray instance in this process"
    space = tmp_path / "multinode.yaml"
    space.write_text(
        (SPACES / "smoke.yaml")
        .read_text()
        .replace("name: smoke", "name: multinode")
        .replace("trials: 3", f"trials: {TRIALS}\nmax_failures: 3")
    )
    results, storage = tmp_path / "results", tmp_path / "storage"
    # the head runs no trials (no CPU): trials must go to the two worker nodes
    with LocalCluster({"node_a": 1, "node_b": 1}, head_cpus=0) as cluster:

        def run(*args: str, **kwargs):
            return subprocess.run(
                cluster.command(sys.executable, *args),
                env=cluster.env,
                capture_output=True,
                text=True,
                timeout=300,
                **kwargs,
            )

        made = run(
            "-m",
            "raysearch.synth",
            "--out",
            str(tmp_path / "synthetic"),
            "--clips-per-genre",
            "10",
            "--duration",
            "6",
        )
        assert made.returncode == 0, made.stderr[-2000:]
        prepared = run(
            "-m",
            "raysearch.prepare",
            "--data",
            str(tmp_path / "synthetic"),
            "--out",
            str(tmp_path / "shards"),
            "--address",
            cluster.address,
        )
        assert prepared.returncode == 0, prepared.stderr[-2000:]

        log = open(tmp_path / "search.log", "w")
        driver = subprocess.Popen(
            cluster.command(
                sys.executable,
                "-m",
                "raysearch.tune",
                "--space",
                str(space),
                "--shards",
                str(tmp_path / "shards"),
                "--storage",
                str(storage),
                "--results",
                str(results),
                "--address",
                cluster.address,
            ),
            env=cluster.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # kill node_b once two trials finished, while the next two are training (a trial
            # takes about 25 s here: its worker group starts within a few seconds)
            deadline = time.time() + 240
            finished = []
            while time.time() < deadline and driver.poll() is None and len(finished) < 2:
                time.sleep(1)
                finished = [r for r in _records_so_far(storage) if r.status == "completed"]
            assert len(finished) >= 2, (tmp_path / "search.log").read_text()[-3000:]
            time.sleep(10)
            assert driver.poll() is None, "the search ended before a node could be killed"
            killed = cluster.kill_worker_node("node_b")
            assert killed >= 1
            driver.wait(timeout=420)
        finally:
            if driver.poll() is None:
                driver.kill()
        output = (tmp_path / "search.log").read_text()
        assert driver.returncode == 0, output[-4000:]

        records = _records(storage)
        assert len(records) == TRIALS
        assert [r.status for r in records] == ["completed"] * TRIALS, output[-4000:]
        nodes = {r.last_result["node_id"] for r in records}
        assert len(nodes) >= 2, "every trial ran on one node"
        board = pd.read_csv(results / "leaderboard.csv")
        assert len(board) == TRIALS and set(board["status"]) == {"completed"}
    assert not cluster.cluster_pids(), "Ray processes left behind"
