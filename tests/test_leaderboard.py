"""Leaderboard ranking and the report tables, from trial records (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from raysearch.leaderboard import TrialRecord, leaderboard_frame, status_of, write_results
from raysearch.space import load_space

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def record(
    trial_id: str,
    placement: str,
    seed: int,
    val: float,
    test: float | None,
    status: str = "completed",
) -> TrialRecord:
    result = {"best_val_acc": val, "epoch": 3, "time_total_s": 10.0}
    if test is not None:
        result.update(test_acc=test, test_track_acc=test + 0.05, epochs_run=3, n_params=1000)
    return TrialRecord(trial_id, {"se_blocks": placement, "__trial_index__": seed}, result, status)


def test_status_needs_test_metrics_to_be_completed():
    assert status_of("TERMINATED", {"test_acc": 0.5}) == "completed"
    assert status_of("TERMINATED", {"best_val_acc": 0.5}) == "stopped early"
    assert status_of("ERROR", {}) == "error"


def test_ranking_and_table_5_1_mean_and_std(tmp_path):
    space = load_space(SPACES / "se_blocks.yaml")
    records = [
        record("a", "[]", 0, 0.50, 0.40),
        record("b", "[]", 1, 0.70, 0.60),
        record("c", "[1, 2, 3, 4, 5]", 0, 0.90, 0.80),
        record("d", "[5]", 0, 0.60, None, status="stopped early"),
    ]
    frame = leaderboard_frame(space, records)
    assert list(frame["trial_id"]) == ["c", "b", "d", "a"]
    assert list(frame["seed"]) == [0, 1, 0, 0]
    assert list(frame["se_blocks"]) == ["1,2,3,4,5", "none", "5", "none"]
    write_results(space, records, str(tmp_path))
    table = pd.read_csv(tmp_path / "table_5_1_se_blocks.csv")
    assert list(table["SE blocks"]) == ["none", "1,2,3,4,5"]  # the stopped trial is left out
    assert list(table["runs"]) == [2, 1]
    assert table.loc[0, "test segment acc (%)"] == "50.0 ± 14.1"
    assert table.loc[1, "report, split unknown (%)"] == 93.6
    assert "Report table 5.1" in (tmp_path / "leaderboard.md").read_text()
