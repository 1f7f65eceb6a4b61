"""``predictions.npz``: a completed trial's class probabilities on validation and test, written
beside its ``model.pt`` (the same best-by-validation weights) so that the search's ensemble
(:mod:`raysearch.results.ensemble`) is chosen and scored without the shards or a network.

Per split (``val``, ``test``): ``{split}_probs`` (N, K) float16 segment probabilities,
``{split}_track`` (N,) int32 index of each segment's track into ``{split}_tracks`` (the
split's track ids, sorted), ``{split}_label`` (N,) int16 labels; and ``classes`` (K,). No
pickled objects: ``np.load(..., allow_pickle=False)`` reads it, from a path or a bucket.
Segments are in the order of the shards' split, the same for every trial of a search.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from raysearch.storage import join, read_bytes, write_bytes_atomic

PREDICTIONS_FILE = "predictions.npz"
SPLITS = ("val", "test")


@dataclass(frozen=True)
class SplitPredictions:
    """One split's segment probabilities (N, K), labels (N,) and track index (N,) into
    ``tracks`` (T,)."""

    probs: np.ndarray
    label: np.ndarray
    track: np.ndarray
    tracks: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray, labels, track_ids) -> SplitPredictions:
        """From an evaluation's probabilities, the split's labels and its track ids."""
        tracks, index = np.unique(np.asarray(track_ids).astype(str), return_inverse=True)
        return cls(
            probs=np.asarray(probs, dtype=np.float16),
            label=np.asarray(labels).astype(np.int16),
            track=index.astype(np.int32),
            tracks=tracks,
        )

    def same_segments(self, other: SplitPredictions) -> bool:
        """Whether ``other`` scores the same segments in the same order (same labels, tracks)."""
        return (
            np.array_equal(self.label, other.label)
            and np.array_equal(self.track, other.track)
            and np.array_equal(self.tracks, other.tracks)
        )


def save_predictions(folder: str, splits: dict[str, SplitPredictions], classes) -> str:
    """Write ``predictions.npz`` into ``folder`` (a path or a URI); returns its location."""
    arrays = {"classes": np.asarray(list(classes), dtype=str)}
    for name, split in splits.items():
        arrays.update({
            f"{name}_probs": split.probs,
            f"{name}_label": split.label,
            f"{name}_track": split.track,
            f"{name}_tracks": split.tracks,
        })  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: float16 probabilities hardly compress
    location = join(folder, PREDICTIONS_FILE)
    write_bytes_atomic(location, buffer.getvalue(), durable=False)
    return location


def predictions_location(checkpoint: str) -> str:
    """Where the predictions of the checkpoint folder ``checkpoint`` are."""
    return join(checkpoint, PREDICTIONS_FILE)


def load_predictions(checkpoint: str) -> dict[str, SplitPredictions]:
    """The ``val`` and ``test`` predictions kept in a checkpoint folder (path or URI); raises
    FileNotFoundError when it has none (a trial that did not complete, or one trained before
    trials kept them)."""
    location = predictions_location(checkpoint)
    try:
        data = read_bytes(location)
    except OSError as exc:  # FileNotFoundError on a disk, OSError from a bucket
        raise FileNotFoundError(f"{location}: no predictions ({exc})") from None
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {
            name: SplitPredictions(
                probs=npz[f"{name}_probs"],
                label=npz[f"{name}_label"],
                track=npz[f"{name}_track"],
                tracks=npz[f"{name}_tracks"],
            )
            for name in SPLITS
        }
