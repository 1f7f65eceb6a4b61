"""Ensemble selection (Caruana et al. 2004) on validation probabilities: numpy only."""

from __future__ import annotations

import numpy as np
import pytest

from raysearch.metrics import classification_report
from raysearch.results.ensemble import combine, score, select

K = 4  # classes


def one_hot_votes(correct: np.ndarray, label: np.ndarray, confidence: float = 0.7) -> np.ndarray:
    """(N, K) probabilities: ``confidence`` on the true class where ``correct``, else on the
    next class; the rest spread evenly."""
    probs = np.full((len(label), K), (1 - confidence) / (K - 1))
    guess = np.where(correct, label, (label + 1) % K)
    probs[np.arange(len(label)), guess] = confidence
    return probs


def tracks(n_tracks: int, per_track: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) and track index (N,): ``per_track`` segments a track, labels by track."""
    track = np.repeat(np.arange(n_tracks), per_track)
    return track % K, track


def test_score_is_the_track_vote_and_segment_accuracy_of_the_metrics_module():
    rng = np.random.default_rng(0)
    label, track = tracks(20)
    probs = rng.dirichlet(np.ones(K), size=len(label))
    ours = score(probs, label, track)
    names = np.array([f"t{i:03d}" for i in track], dtype=object)
    report = classification_report(probs, label, names, [str(k) for k in range(K)])
    assert ours.segment_acc == report["segment_acc"]
    assert ours.track_acc == report["track_acc"]
    assert ours.log_loss == pytest.approx(-np.log(probs[np.arange(len(label)), label]).mean())


def test_models_wrong_on_different_tracks_together_beat_each_alone():
    label, track = tracks(12)
    # each right on two thirds of the tracks, each wrong on another third
    a, b, c = (one_hot_votes(track // 4 != wrong, label, 0.6) for wrong in range(3))
    chosen = select([a, b, c], label, track, start=0, rounds=5)
    assert [score(m, label, track).track_acc for m in (a, b, c)] == [8 / 12] * 3
    assert chosen.members[0] == 0 and set(chosen.members) == {0, 1, 2}
    assert chosen.score.track_acc == 1.0
    assert chosen.counts.sum() == chosen.kept and chosen.weights.sum() == pytest.approx(1)
    assert chosen.score == score(combine([a, b, c], chosen.weights), label, track)


def test_the_ensembles_validation_score_is_never_below_its_starts_by_construction():
    """The kept ensemble is the best of the nested ensembles the rounds built, the one-member
    start among them, so on validation it is at least the start (the best trial): its score's
    key (track accuracy, then lower log-loss) can only be equal or greater. Test is whatever
    it is."""
    rng = np.random.default_rng(1)
    label, track = tracks(15)
    for _ in range(30):
        library = [rng.dirichlet(np.ones(K) * 0.5, size=len(label)) for _ in range(6)]
        start = int(rng.integers(6))
        chosen = select(library, label, track, start=start, rounds=10)
        assert chosen.score.key() >= score(library[start], label, track).key()
        assert chosen.members[0] == start and chosen.counts[start] >= 1
        assert max(t.key() for t in chosen.trajectory) == chosen.score.key()


def test_ties_on_track_accuracy_go_to_the_lower_log_loss():
    label, track = tracks(8)
    right = np.ones(len(label), dtype=bool)
    start = one_hot_votes(right, label, 0.5)
    unsure = one_hot_votes(right, label, 0.4)  # votes the same tracks, less sure
    sure = one_hot_votes(right, label, 0.95)
    chosen = select([start, unsure, sure], label, track, start=0, rounds=2)
    # all three are right on every track: the log-loss decides (and keeps round 2)
    assert chosen.counts.tolist() == [1, 0, 1] and chosen.kept == 2


def test_a_full_tie_keeps_the_smaller_ensemble_and_the_earlier_candidate():
    label, track = tracks(6)
    same = one_hot_votes(np.ones(len(label), dtype=bool), label, 0.8)
    chosen = select([same, same.copy()], label, track, start=1, rounds=4)
    assert chosen.kept == 1 and chosen.members == [1]  # adding an equal model changes nothing


def test_one_candidate_is_its_own_ensemble():
    label, track = tracks(5)
    only = one_hot_votes(np.arange(len(label)) % 2 == 0, label)
    chosen = select([only], label, track, start=0, rounds=25)
    assert chosen.members == [0] and chosen.weights.tolist() == [1.0]
    assert chosen.score == score(only, label, track)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"start": 3}, "start must index"), ({"rounds": 0}, "rounds must be at least 1")],
)
def test_bad_settings_are_refused(kwargs, message):
    label, track = tracks(3)
    with pytest.raises(ValueError, match=message):
        select([one_hot_votes(np.ones(len(label), bool), label)], label, track, **kwargs)
