"""The baseline's classifier: C chosen on validation only, scored with the CNN rows' metrics."""

from __future__ import annotations

import numpy as np
import pytest

from raysearch.baseline.classifier import (
    ClassifierConfig,
    ClassifierConfigError,
    FeatureSplit,
    fit_and_score,
    fit_model,
    probabilities,
)
from raysearch.metrics import classification_report

CLASSES = [f"genre{k}" for k in range(10)]
# imbalanced on purpose: a strongly regularised model falls back on the frequent classes
COUNTS = [30, 20, 12, 8, 6, 5, 4, 3, 2, 2]


def split(seed: int, counts=COUNTS, segments: int = 3, noise: float = 1.2) -> FeatureSplit:
    """Tracks of ``segments`` segments each, features around one centre per class."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(len(counts), 8))
    labels = np.repeat(np.arange(len(counts)), counts)
    x, label, track = [], [], []
    for i, k in enumerate(labels):
        for _ in range(segments):
            x.append(centres[k] + noise * rng.normal(size=8))
            label.append(k)
            track.append(f"s{seed}-{i:03d}")
    return FeatureSplit(np.array(x), np.array(label), np.array(track, dtype=object))


def test_c_is_chosen_on_validation_and_never_on_test():
    """Test labels made to favour the smallest C (they are its own predictions): a selection
    that looked at test would choose it; the one on validation does not move."""
    train, val, test = split(1), split(2), split(3)
    config = ClassifierConfig()
    honest = fit_and_score(train, val, test, CLASSES, config)
    smallest = config.c_grid[0]
    assert honest.c != smallest  # what validation prefers here
    rigged = FeatureSplit(
        test.x, fit_model(train.x, train.label, smallest, config).predict(test.x), test.track_id
    )
    test_acc_by_c = [
        (fit_model(train.x, train.label, c, config).predict(rigged.x) == rigged.label).mean()
        for c in config.c_grid
    ]
    assert int(np.argmax(test_acc_by_c)) == 0 and max(test_acc_by_c) == 1.0  # test would pick it
    fitted = fit_and_score(train, val, rigged, CLASSES, config)
    assert fitted.c == honest.c
    assert fitted.val_acc_by_c == honest.val_acc_by_c and fitted.val == honest.val
    assert fitted.test != honest.test  # the rigged labels were scored, after the choice
    # the choice is the best validation accuracy
    assert fitted.val_acc_by_c[config.c_grid.index(fitted.c)] == max(fitted.val_acc_by_c)
    assert fitted.val.segment_acc == pytest.approx(max(fitted.val_acc_by_c))


def test_a_tie_on_validation_goes_to_the_smaller_c():
    """Two well-separated classes: every C is perfect on validation."""
    counts = [10, 10]
    train, val, test = (split(s, counts, noise=0.01) for s in (1, 2, 3))
    config = ClassifierConfig(c_grid=(10.0, 0.1, 1.0))
    fitted = fit_and_score(train, val, test, CLASSES[:2], config)
    assert fitted.val_acc_by_c == (1.0, 1.0, 1.0)
    assert fitted.c == 0.1


def test_scores_are_the_cnn_rows_segment_accuracy_and_track_vote():
    train, val, test = split(1), split(2), split(3)
    config = ClassifierConfig()
    fitted = fit_and_score(train, val, test, CLASSES, config)
    model = fit_model(train.x, train.label, fitted.c, config)
    report = classification_report(
        probabilities(model, test.x, len(CLASSES)), test.label, test.track_id, CLASSES
    )
    assert fitted.test.segment_acc == report["segment_acc"]
    assert fitted.test.track_acc == report["track_acc"]
    assert (fitted.test.segments, fitted.test.tracks) == (len(test), sum(COUNTS))
    assert fitted.test.track_acc > fitted.test.segment_acc  # the vote of 3 noisy segments helps


def test_a_class_missing_from_training_gets_probability_zero():
    train = split(1, counts=[10, 10, 0, 10])  # class 2 has no training track
    model = fit_model(train.x, train.label, 1.0, ClassifierConfig())
    probs = probabilities(model, split(2, counts=[3, 3, 3, 3]).x, 4)
    assert probs.shape == (36, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[:, 2] == 0).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"c_grid": ()}, "c_grid must hold positive"),
        ({"c_grid": (1.0, -1.0)}, "c_grid"),
        ({"max_iter": 0}, "max_iter must be >= 1"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ClassifierConfigError, match=message):
        ClassifierConfig(**settings)
