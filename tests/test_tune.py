"""The search end to end on a local Ray cluster: smoke.yaml, the leaderboard, and resume after
a real SIGKILL of the driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from raysearch.space import SpaceError, load_space
from raysearch.tune import concurrency_for, run_search

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
LEADERBOARD_COLUMNS = [
    "rank",
    "trial_id",
    "status",
    "ratio",
    "channels_used",
    "seed",
    "best_val_acc",
    "test_acc",
    "test_track_acc",
    "epochs_run",
    "n_params",
    "wall_s",
]


@pytest.fixture(scope="module")
def smoke_run(ray_session, tiny_shards, tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    results = tmp_path_factory.mktemp("results")
    space = load_space(SPACES / "smoke.yaml")
    run_search(space, tiny_shards, str(storage), str(results), verbose=0)
    return space, storage, results


def test_smoke_search_writes_a_full_leaderboard(smoke_run):
    space, _, results = smoke_run
    board = pd.read_csv(results / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == space.trials == 3
    assert list(board["rank"]) == [1, 2, 3]
    assert set(board["status"]) == {"completed"}
    assert board["best_val_acc"].is_monotonic_decreasing
    assert board["ratio"].between(2, 16).all()
    assert board["ratio"].nunique() == 3
    assert (board["epochs_run"] == 2).all()
    assert board["test_track_acc"].between(0, 1).all()


def test_smoke_search_writes_markdown_table_and_plots(smoke_run):
    _, _, results = smoke_run
    text = (results / "leaderboard.md").read_text()
    assert "## Top 10" in text and "python -m raysearch.train" in text
    table = pd.read_csv(results / "table_5_2_ratio.csv")
    assert table["runs"].sum() == 3
    assert (results / "optimization_history.png").stat().st_size > 1000
    assert (results / "ratio_vs_accuracy.png").stat().st_size > 1000
    assert not list(results.glob(".*tmp"))  # atomic writes leave no temporary files


def test_leaderboard_cli_rebuilds_the_same_board(smoke_run, tmp_path):
    space, storage, results = smoke_run
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raysearch.leaderboard",
            str(storage / space.name),
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    again = pd.read_csv(tmp_path / "leaderboard.csv")
    first = pd.read_csv(results / "leaderboard.csv")
    pd.testing.assert_frame_equal(again.drop(columns="wall_s"), first.drop(columns="wall_s"))


def test_existing_experiment_needs_resume(smoke_run, tiny_shards, tmp_path):
    space, storage, _ = smoke_run
    with pytest.raises(SpaceError, match="pass --resume"):
        run_search(space, tiny_shards, str(storage), str(tmp_path))


def test_concurrency_fits_the_cluster():
    space = load_space(SPACES / "ratio.yaml")  # 1 worker, 1 CPU, 0.25 GPU per trial
    assert concurrency_for(space, cpus=2) == 2
    assert concurrency_for(space, cpus=16, gpus=1) == 4
    assert concurrency_for(space, cpus=64, gpus=8) == 32
    assert concurrency_for(space, cpus=0.5) == 1


def _completed(results: Path) -> pd.DataFrame:
    path = results / "leaderboard.csv"
    if not path.exists():
        return pd.DataFrame()
    board = pd.read_csv(path)
    return board[board["status"] == "completed"]


def test_resume_after_sigkill_finishes_exactly_n_trials(ray_session, tiny_shards, tmp_path):
    space_file = tmp_path / "resume.yaml"
    space_file.write_text(
        (SPACES / "smoke.yaml")
        .read_text()
        .replace("trials: 3", "trials: 4")
        .replace("name: smoke", "name: resume")
    )
    results, storage = tmp_path / "results", tmp_path / "storage"
    address = ray_session.get_runtime_context().gcs_address
    command = [
        sys.executable,
        "-m",
        "raysearch.tune",
        "--space",
        str(space_file),
        "--shards",
        tiny_shards,
        "--storage",
        str(storage),
        "--results",
        str(results),
        "--address",
        address,
    ]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    # the leaderboard marks a trial completed when Tune does (after its trainer shut down)
    while len(_completed(results)) < 2 and driver.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert driver.poll() is None, "the driver ended before it could be killed"
    time.sleep(1.5)  # past the 1 s experiment-state save after a trial ends
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished = _completed(results).set_index("trial_id")
    assert 2 <= len(finished) < 4

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    board = pd.read_csv(results / "leaderboard.csv").set_index("trial_id")
    assert len(board) == 4
    assert set(board["status"]) == {"completed"}
    for trial_id, row in finished.iterrows():  # kept, not re-run: same numbers, same wall time
        assert board.loc[trial_id, "ratio"] == row["ratio"]
        assert board.loc[trial_id, "best_val_acc"] == row["best_val_acc"]
        assert board.loc[trial_id, "wall_s"] == row["wall_s"]
