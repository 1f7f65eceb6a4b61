"""Classification metrics on segment probabilities: segment accuracy, track vote, confusion.

Pure numpy, no Ray or torch: the trainer, the predictor and the tests share them.
"""

from __future__ import annotations

import numpy as np


def track_vote(probs: np.ndarray, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the segment probabilities of each track.

    ``probs``: (N, K) segment probabilities; ``track_ids``: (N,) track of each segment.
    Returns ``(tracks, track_probs)``: the sorted unique track ids and their (T, K) mean
    probabilities. A track's prediction is ``track_probs.argmax(1)``.
    """
    tracks, inverse = np.unique(np.asarray(track_ids), return_inverse=True)
    sums = np.zeros((len(tracks), probs.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, probs)
    counts = np.bincount(inverse, minlength=len(tracks))[:, None]
    return tracks, sums / counts


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (NaN for a class with no example)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def classification_report(
    probs: np.ndarray, labels: np.ndarray, track_ids: np.ndarray, class_names: list[str]
) -> dict:
    """Segment accuracy, track accuracy (vote of the segment probabilities), per-class track
    accuracy and the track-level confusion matrix."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {
            "segment_acc": float("nan"),
            "track_acc": float("nan"),
            "tracks": 0,
            "segments": 0,
            "per_class_acc": {},
            "confusion": [],
        }
    segment_acc = float((probs.argmax(1) == labels).mean())
    tracks, track_probs = track_vote(probs, track_ids)
    first = {t: i for i, t in reversed(list(enumerate(np.asarray(track_ids))))}
    track_labels = np.array([labels[first[t]] for t in tracks])
    track_pred = track_probs.argmax(1)
    matrix = confusion_matrix(track_labels, track_pred, len(class_names))
    recall = per_class_accuracy(matrix)
    return {
        "segment_acc": segment_acc,
        "track_acc": float((track_pred == track_labels).mean()),
        "tracks": int(len(tracks)),
        "segments": int(len(labels)),
        "per_class_acc": {
            name: (None if np.isnan(r) else float(r))
            for name, r in zip(class_names, recall, strict=True)
        },
        "confusion": matrix.tolist(),
    }
