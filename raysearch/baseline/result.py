"""What the classical baseline found on a shard set: :class:`BaselineResult`, the record cached
beside the shards and shown beside the CNN rows. Light to import (the results writer does):
no librosa, no scikit-learn."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raysearch.baseline.classifier import Fit

METHOD = "MFCC + logistic regression"


@dataclass(frozen=True)
class BaselineResult:
    """The baseline on one shard set. Accuracies are fractions, as in the leaderboard; ``val_*``
    and ``test_*`` are those of the C chosen on validation."""

    c: float
    c_grid: tuple[float, ...]
    val_acc_by_c: tuple[float, ...]  # validation segment accuracy of each C of c_grid
    val_acc: float  # segment
    val_track_acc: float
    test_acc: float  # segment
    test_track_acc: float
    test_segments: int
    test_tracks: int
    train_segments: int
    n_mfcc: int
    mel_bands: int
    n_features: int
    converged: bool  # lbfgs converged for the chosen C
    features_s: float  # reading the shards and computing every split's features
    fit_s: float  # every C fitted and scored

    @classmethod
    def of(cls, fit: Fit, c_grid: tuple[float, ...], **sizes) -> BaselineResult:
        """From a :class:`~raysearch.baseline.classifier.Fit` over ``c_grid``; ``sizes``: the
        remaining fields (counts, bands, seconds)."""
        return cls(
            c=fit.c,
            c_grid=tuple(c_grid),
            val_acc_by_c=fit.val_acc_by_c,
            val_acc=fit.val.segment_acc,
            val_track_acc=fit.val.track_acc,
            test_acc=fit.test.segment_acc,
            test_track_acc=fit.test.track_acc,
            test_segments=fit.test.segments,
            test_tracks=fit.test.tracks,
            converged=fit.converged,
            fit_s=round(fit.fit_s, 2),
            **sizes,
        )

    @property
    def label(self) -> str:
        """How a table row names it: ``baseline: MFCC + logistic regression (C=0.1)``."""
        return f"baseline: {METHOD} (C={self.c:g})"

    @property
    def description(self) -> str:
        """What it is, in one sentence."""
        return (
            f"{self.n_mfcc} MFCCs (of {self.mel_bands} mel bands) and the spectral centroid, "
            "their mean and standard deviation over each 3 s segment's frames, computed from "
            "the shards' spectrograms; standardised; logistic regression with C chosen on "
            f"validation from {', '.join(f'{c:g}' for c in self.c_grid)}; track accuracy by "
            "the same vote of segment probabilities as the CNN rows"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> BaselineResult:
        """The inverse of :meth:`to_dict`; ``KeyError`` / ``TypeError`` if a field is missing."""
        values = {f.name: payload[f.name] for f in fields(cls)}
        values["c_grid"] = tuple(values["c_grid"])
        values["val_acc_by_c"] = tuple(values["val_acc_by_c"])
        return cls(**values)

    def beats(self, cnn_test_track_acc: float) -> str:
        """One sentence: by how many points ``cnn_test_track_acc`` beats this baseline's test
        track accuracy, or plainly that it does not."""
        if cnn_test_track_acc is None or math.isnan(cnn_test_track_acc):
            return "It has no test track accuracy to compare with the baseline's."
        points = 100 * (cnn_test_track_acc - self.test_track_acc)
        figures = (
            f"test track accuracy {cnn_test_track_acc:.3f} against the baseline's "
            f"{self.test_track_acc:.3f} ({METHOD}, C={self.c:g})"
        )
        if round(points, 1) > 0:
            return f"It beats the classical baseline by {points:.1f} points: {figures}."
        if round(points, 1) == 0:
            return f"It does not beat the classical baseline, it ties with it: {figures}."
        return (
            f"**It does not beat the classical baseline**: {-points:.1f} points below it, "
            f"{figures}."
        )
