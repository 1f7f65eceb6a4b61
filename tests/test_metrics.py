"""Track accuracy is computed from segment votes (mean probabilities), not segment majority."""

from __future__ import annotations

import numpy as np

from raysearch.metrics import classification_report, confusion_matrix, track_vote


def test_track_vote_averages_probabilities():
    probs = np.array(
        [
            [0.6, 0.4, 0.0],  # track a: two weak votes for class 0 ...
            [0.6, 0.4, 0.0],
            [0.0, 1.0, 0.0],  # ... one strong vote for class 1: the mean picks class 1
            [0.1, 0.1, 0.8],  # track b
        ]
    )
    tracks, mean = track_vote(probs, np.array(["a", "a", "a", "b"]))
    assert list(tracks) == ["a", "b"]
    np.testing.assert_allclose(mean[0], [0.4, 0.6, 0.0])
    assert list(mean.argmax(1)) == [1, 2]


def test_report_segment_and_track_accuracy_differ_as_expected():
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8]])
    labels = np.array([1, 1, 1, 0, 0])
    tracks = np.array(["a", "a", "a", "b", "b"])
    report = classification_report(probs, labels, tracks, ["x", "y"])
    assert report["segment_acc"] == 2 / 5  # segments 3 and 4 right
    assert report["track_acc"] == 1.0  # a: mean (0.4, 0.6) → 1 right; b: (0.55, 0.45) → 0 right
    assert report["confusion"] == [[1, 0], [0, 1]]
    assert report["per_class_acc"] == {"x": 1.0, "y": 1.0}


def test_confusion_rows_are_true_classes():
    matrix = confusion_matrix(np.array([0, 0, 1]), np.array([1, 0, 1]), 2)
    assert matrix.tolist() == [[1, 1], [0, 1]]
