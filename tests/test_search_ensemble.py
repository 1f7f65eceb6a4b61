"""The search's ensemble from its trials' kept predictions: candidates, selection on validation
only, ensemble.json, and the ensemble row beside the baseline's in every result file (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysearch.results.rank import trial_frame
from raysearch.results.search_ensemble import (
    ENSEMBLE_FILE,
    EXPERIMENT_ENSEMBLE,
    EnsembleUnavailable,
    build_ensemble,
    experiment_ensemble,
    load_ensemble,
)
from raysearch.results.write import build_search_ensemble, write_results
from raysearch.search.space import load_space
from raysearch.training.predictions import SplitPredictions, load_predictions, save_predictions
from tests.test_leaderboard import SPACES, record

K = 4
TRACKS = {"val": 12, "test": 12}


def labels_and_tracks(split: str) -> tuple[np.ndarray, np.ndarray]:
    """3 segments a track, the track's label its number mod K."""
    track = np.repeat(np.arange(TRACKS[split]), 3)
    return track % K, np.array([f"{split}.{t:05d}" for t in track], dtype=object)


def votes(label: np.ndarray, right: np.ndarray, confidence: float = 0.6) -> np.ndarray:
    probs = np.full((len(label), K), (1 - confidence) / (K - 1))
    probs[np.arange(len(label)), np.where(right, label, (label + 1) % K)] = confidence
    return probs


def keep(folder: Path, val_wrong: int, test_wrong: int, test_label=None) -> str:
    """A checkpoint folder whose predictions are wrong on one third of the tracks (val: the
    ``val_wrong``-th third; test likewise), as a completed trial leaves it."""
    splits = {}
    for split, wrong in (("val", val_wrong), ("test", test_wrong)):
        label, names = labels_and_tracks(split)
        thirds = np.repeat(np.arange(TRACKS[split]), 3) // 4
        probs = votes(label, thirds != wrong)
        if split == "test" and test_label is not None:
            label = test_label
        splits[split] = SplitPredictions.of(probs, label, names)
    folder.mkdir(parents=True, exist_ok=True)
    save_predictions(str(folder), splits, [str(k) for k in range(K)])
    return str(folder)


def trials(tmp_path: Path, rigged_test_label=None):
    """Four completed ratio trials with predictions (a ranks first by best_val_acc), and a
    twin of b: a, b and c are each wrong on another third of the validation tracks; d on
    the same third as a."""
    space = load_space(SPACES / "ratio.yaml")
    records = []
    for name, ratio, val, wrong in (("a", 8.0, 0.9, 0), ("b", 16.0, 0.8, 1),
                                    ("c", 32.0, 0.7, 2), ("d", 4.0, 0.6, 0)):  # fmt: skip
        row = record(name, {"ratio": ratio}, 0, val, val - 0.1)
        row.checkpoint = keep(tmp_path / name, wrong, wrong, rigged_test_label)
        records.append(row)
    twin = record("e", {"ratio": 15.9}, 0, 0.8, 0.7, reused_from="b")
    twin.checkpoint = ""  # a twin keeps no checkpoint: the leaderboard gives it b's
    return space, [*records, twin]


def test_predictions_round_trip_without_pickles(tmp_path):
    folder = keep(tmp_path / "t", 0, 1)
    kept = load_predictions(folder)
    label, names = labels_and_tracks("val")
    assert kept["val"].probs.dtype == np.float16 and kept["val"].probs.shape == (36, K)
    assert kept["val"].label.tolist() == label.tolist()
    assert kept["val"].tracks[kept["val"].track].tolist() == names.tolist()
    with pytest.raises(FileNotFoundError, match="no predictions"):
        load_predictions(str(tmp_path / "none"))


def test_the_ensemble_combines_networks_wrong_on_different_tracks(tmp_path):
    space, records = trials(tmp_path)
    result = build_ensemble(trial_frame(space, records), "exp")
    assert result.candidates == ["a", "b", "c", "d"]  # the twin e is b's network: one candidate
    assert [m["trial_id"] for m in result.members][0] == "a"  # the best trial starts it
    assert {m["trial_id"] for m in result.members} == {"a", "b", "c"}
    assert sum(m["weight"] for m in result.members) == pytest.approx(1)
    assert result.val["track_acc"] == 1.0 > result.best_trial["val"]["track_acc"]
    assert result.test["track_acc"] == 1.0  # here test looks like validation
    assert result.members[0]["checkpoint"] == str(tmp_path / "a")


def test_selection_sees_validation_only(tmp_path):
    """Test labels rigged so that every network but d is wrong on test, and d right on
    every test track: a choice made on test would take d alone. The members do not move; the
    rigged labels are scored after the choice."""
    honest = build_ensemble(trial_frame(*trials(tmp_path / "honest")), "exp")
    label, _ = labels_and_tracks("test")
    thirds = np.repeat(np.arange(TRACKS["test"]), 3) // 4
    rigged_label = np.where(thirds == 0, (label + 1) % K, label)  # d's (and a's) wrong votes
    rigged = build_ensemble(trial_frame(*trials(tmp_path / "rigged", rigged_label)), "exp")
    weights = [(m["trial_id"], m["weight"]) for m in rigged.members]
    assert weights == [(m["trial_id"], m["weight"]) for m in honest.members]
    assert rigged.val == honest.val and rigged.test != honest.test
    d_alone = load_predictions(str(tmp_path / "rigged" / "d"))["test"]
    assert (d_alone.probs.argmax(1) == d_alone.label).all()  # what a test choice would take


def test_one_completed_trial_is_the_ensemble_and_it_says_so(tmp_path):
    space, records = trials(tmp_path)
    only = [records[0], *(
        record(r.trial_id, r.config, 0, 0.5, None, status="stopped early") for r in records[1:4]
    )]  # fmt: skip
    result = build_ensemble(trial_frame(space, only), "exp")
    assert [m["trial_id"] for m in result.members] == ["a"] and result.members[0]["weight"] == 1
    assert result.val == result.best_trial["val"] and result.test == result.best_trial["test"]
    assert result.note.startswith("One completed trial with predictions: the ensemble is that")
    assert result.label == "ensemble of 1 (the best trial)"


def test_no_completed_trial_or_no_predictions_is_one_line(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    stopped = [record("a", {"ratio": 8.0}, 0, 0.5, None, status="stopped early")]
    with pytest.raises(EnsembleUnavailable, match="no completed trial"):
        build_ensemble(trial_frame(space, stopped))
    old = [record("a", {"ratio": 8.0}, 0, 0.5, 0.4)]  # /ckpt/a: trained before predictions
    with pytest.raises(EnsembleUnavailable, match=r"best trial \(a\) kept no predictions"):
        build_ensemble(trial_frame(space, old))


def test_the_ensemble_is_beside_the_baseline_in_every_result_file(tmp_path):
    from tests.test_results_baseline import META, baseline

    space, records = trials(tmp_path)
    experiment, results = tmp_path / "experiment", tmp_path / "results"
    result = build_search_ensemble(space, records, str(experiment), META)
    assert (experiment / EXPERIMENT_ENSEMBLE).exists()  # kept beside the experiment
    write_results(space, records, str(results), str(experiment), META,
                  baseline=baseline(test_track_acc=0.62), ensemble=result)  # fmt: skip
    assert load_ensemble(str(results / ENSEMBLE_FILE)) == result
    text = (results / "leaderboard.md").read_text()
    ensemble_row = next(line for line in text.splitlines() if line.startswith("| ensemble |"))
    assert "| ensemble of 3 | selected on validation |" in ensemble_row
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert rows.index("| ensemble") == rows.index("| baseline") - 1  # just above the baseline
    assert "## Ensemble of the search's networks" in text
    table = pd.read_csv(results / "table_5_2_ratio.csv")
    assert list(table["ratio r"].iloc[-2:]) == ["ensemble of 3", baseline().label]
    assert table.iloc[-2]["test track acc (%)"] == 100.0
    summary = json.loads((results / "summary.json").read_text())
    entry = summary["ensemble"]
    assert entry["size"] == 3 and entry["minus_baseline_test_track_points"] == 38.0
    assert entry["minus_best_trial_test_track_points"] == pytest.approx(100 * (1 - 8 / 12), 0.01)
    assert "- The ensemble of 3 models: +33.3 points over the best trial" in text
    assert (results / "accuracy_vs_parameters.png").stat().st_size > 1000
    # a rewrite without it (a trial ended during a resumed search) leaves no stale file
    write_results(space, records, str(results), str(experiment), META)
    assert not (results / ENSEMBLE_FILE).exists()
    assert "| ensemble |" not in (results / "leaderboard.md").read_text()


def test_the_kept_ensemble_is_used_only_while_its_networks_are_the_completed_ones(tmp_path):
    space, records = trials(tmp_path)
    experiment = tmp_path / "experiment"
    result = build_search_ensemble(space, records, str(experiment))
    assert experiment_ensemble(str(experiment), trial_frame(space, records)) == result
    more = [*records, record("f", {"ratio": 2.0}, 0, 0.95, 0.9)]  # completed since
    assert experiment_ensemble(str(experiment), trial_frame(space, more)) is None


def test_the_ensemble_command_refuses_what_is_not_an_experiment_in_one_line(tmp_path, capsys):
    from raysearch.commands import ensemble

    assert ensemble.main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert ensemble.main([str(tmp_path), "--rounds", "0"]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err


def test_the_end_of_a_search_builds_the_ensemble_unless_told_not_to_or_not_ended(tmp_path):
    from raysearch.commands.tune import build_parser
    from raysearch.results.write import finish_results

    assert build_parser().parse_args(["--space", "ratio", "--no-ensemble"]).ensemble is False
    assert build_parser().parse_args(["--space", "ratio"]).ensemble is True
    space, records = trials(tmp_path)
    said = []
    experiment, results = tmp_path / "experiment", tmp_path / "results"
    assert finish_results(space, records, str(results), str(experiment), ended=False,
                          say=said.append) is None  # fmt: skip
    assert said == ["ensemble and CPU times: left for the end of the search (not finished)"]
    assert not results.exists()
    finish_results(space, records, str(results), str(experiment), ensemble=False)
    assert (results / "leaderboard.md").exists() and not (results / ENSEMBLE_FILE).exists()
    result = finish_results(space, records, str(results), str(experiment))
    assert load_ensemble(str(results / ENSEMBLE_FILE)) == result
    assert load_ensemble(str(experiment / EXPERIMENT_ENSEMBLE)) == result
