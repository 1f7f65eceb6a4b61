"""The classical baseline in the results files: baseline.csv, the row in leaderboard.md and in
the report tables, the best configuration's comparison, the summary.json entry (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from raysearch.baseline.result import BaselineResult
from raysearch.results.baseline import NO_BASELINE, baseline_summary
from raysearch.results.write import write_results
from raysearch.search.space import load_space
from tests.test_leaderboard import record

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
META = {
    "shards": "/data/shards",
    "data": "audio at /gtzan",
    "features": "mel",
    "split_level": "track",
}


def baseline(test_track_acc: float = 0.62) -> BaselineResult:
    """A baseline's record as the cache holds it."""
    return BaselineResult(
        c=0.1,
        c_grid=(0.01, 0.1, 1.0),
        val_acc_by_c=(0.5, 0.58, 0.57),
        val_acc=0.58,
        val_track_acc=0.6,
        test_acc=0.55,
        test_track_acc=test_track_acc,
        test_segments=900,
        test_tracks=300,
        train_segments=1800,
        n_mfcc=20,
        mel_bands=32,
        n_features=42,
        converged=True,
        features_s=1.5,
        fit_s=2.0,
    )


def ratio_records():
    return [  # test_track_acc = test + 0.05: the best (by val) trial reaches 0.75
        record("a", {"ratio": 8.0}, 0, 0.8, 0.7),
        record("b", {"ratio": 16.0}, 0, 0.7, 0.6),
    ]


def test_the_baseline_is_beside_every_cnn_number(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    write_results(space, ratio_records(), str(tmp_path), "exp", META, baseline=baseline())
    row = pd.read_csv(tmp_path / "baseline.csv").iloc[0]
    assert (row["kind"], row["C"], row["test_track_acc"]) == ("baseline", 0.1, 0.62)
    assert (row["best_val_acc"], row["split_level"], row["shards"]) == (
        0.58,
        "track",
        "/data/shards",
    )
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(board) == 2 and "baseline" not in set(board["rank"].astype(str))  # trials only
    text = (tmp_path / "leaderboard.md").read_text()
    top = text.split("## Top 10")[1].split("##")[0]
    last = [line for line in top.splitlines() if line.startswith("|")][-1]
    assert last.startswith("| baseline | baseline: MFCC + logistic regression (C=0.1) |")
    assert "| 0.58 |" in last and "| 0.55 | 0.62 |" in last
    assert (
        "It beats the classical baseline by 13.0 points: test track accuracy 0.750 against "
        "the baseline's 0.620 (MFCC + logistic regression, C=0.1)."
    ) in text
    assert "## Classical baseline" in text and NO_BASELINE not in text
    table = pd.read_csv(tmp_path / "table_5_2_ratio.csv")
    label = "baseline: MFCC + logistic regression (C=0.1)"
    assert list(table["ratio r"].astype(str)) == ["8.0", "16.0", label]
    foot = table.iloc[-1]
    assert (foot["test track acc (%)"], foot["val acc (%)"], foot["split"]) == (62.0, 58.0, "track")
    assert (
        "| baseline: MFCC + logistic regression (C=0.1) |"
        in (tmp_path / "table_5_2_ratio.md").read_text()
    )
    files = json.loads((tmp_path / ".raysearch-results.json").read_text())["files"]
    assert "baseline.csv" in files  # removed with the rest when another search claims the folder


def test_a_best_configuration_below_the_baseline_says_so_plainly(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    write_results(space, ratio_records(), str(tmp_path), "exp", META, baseline=baseline(0.8))
    text = (tmp_path / "leaderboard.md").read_text()
    assert "**It does not beat the classical baseline**: 5.0 points below it" in text


def test_configurations_of_repeated_seeds_compare_their_mean(tmp_path):
    space = load_space(SPACES / "se_blocks.yaml")  # 3 seeds a configuration
    records = [record(f"a{s}", {"se_blocks": "[5]"}, s, 0.8, 0.6 + s / 100) for s in range(3)]
    write_results(space, records, str(tmp_path), "exp", META, baseline=baseline())
    text = (tmp_path / "leaderboard.md").read_text()
    top = text.split("## Top 10")[1].split("##")[0]
    assert "| baseline |" in top
    assert "It beats the classical baseline by 4.0 points: test track accuracy 0.660" in text
    table = pd.read_csv(tmp_path / "table_5_1_se_blocks.csv")
    assert table.iloc[-1]["SE blocks"].startswith("baseline: ")


def test_without_a_baseline_the_files_say_how_to_get_one(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    write_results(space, ratio_records(), str(tmp_path), "exp", META)
    assert not (tmp_path / "baseline.csv").exists()
    text = (tmp_path / "leaderboard.md").read_text()
    assert NO_BASELINE in text and "| baseline |" not in text
    assert "classical baseline by" not in text


def test_the_summary_entry_round_trips_and_says_the_margin():
    entry = baseline_summary(baseline(), best_test_track_acc=0.75)
    assert entry["method"] == "MFCC + logistic regression"
    assert entry["best_minus_baseline_test_track_points"] == pytest.approx(13.0)
    assert BaselineResult.from_dict(json.loads(json.dumps(entry))) == baseline()
    assert "best_minus_baseline_test_track_points" not in baseline_summary(baseline())
