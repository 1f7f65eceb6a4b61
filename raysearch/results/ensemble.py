"""Ensemble selection (R. Caruana, A. Niculescu-Mizil, G. Crew, A. Ksikes, "Ensemble Selection
from Libraries of Models", ICML 2004), as auto-sklearn and AutoGluon end their searches: greedy
forward selection, with replacement, of the models whose averaged validation probabilities
score best. numpy only, no Ray or torch.

Here the library is a search's completed networks and the ensemble starts from the best trial
by the search's own metric. Each round adds the network (any, again included) whose addition
scores best; after ``rounds`` rounds the ensemble kept is the best of the nested ensembles the
rounds built (Caruana et al.'s step 4), the one-member start among them, so its validation
score is never below the start's. Weights are a member's count over the rounds kept.

The score is validation **track accuracy** (the vote of a track's segment probabilities: the
figure users read), with validation **log-loss** of the segment probabilities breaking ties:
track accuracy moves in steps of one track (100 on GTZAN's validation split), so many
candidates tie, and log-loss, continuous, prefers the one that makes the averaged
probabilities more confident where they are right. Then the earlier candidate (better ranked)
and, between nested ensembles, the smaller one. Test predictions are never read here: the
caller scores the chosen weights on test afterwards (:func:`combine`, :func:`score`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_ROUNDS = 25  # auto-sklearn's ensemble_size of 50, halved for searches of 4-50 trials
LOG_EPS = 1e-7  # float16 probabilities can be 0: clipped before the log


@dataclass(frozen=True)
class Score:
    """Segment accuracy, track accuracy (vote) and segment log-loss of (N, K) probabilities."""

    segment_acc: float
    track_acc: float
    log_loss: float

    def key(self) -> tuple[float, float]:
        """Larger is better: track accuracy, then lower log-loss (to 10 decimals: averaging a
        model with itself moves the log-loss by rounding alone, which must not count)."""
        return (self.track_acc, -round(self.log_loss, 10))


def score(probs: np.ndarray, label: np.ndarray, track: np.ndarray) -> Score:
    """:class:`Score` of segment probabilities ``probs`` (N, K) with labels (N,) and each
    segment's track index (N,) into 0..T-1; a track's label is that of its segments."""
    probs = np.asarray(probs, dtype=np.float64)
    label = np.asarray(label, dtype=np.int64)
    track = np.asarray(track, dtype=np.int64)
    n_tracks = int(track.max()) + 1 if len(track) else 0
    sums = np.stack(  # (T, K): each track's summed segment probabilities
        [
            np.bincount(track, weights=probs[:, k], minlength=n_tracks)
            for k in range(probs.shape[1])
        ],
        axis=1,
    )
    track_label = np.zeros(n_tracks, dtype=np.int64)
    track_label[track] = label
    seen = np.bincount(track, minlength=n_tracks) > 0
    track_acc = float((sums.argmax(1) == track_label)[seen].mean()) if seen.any() else np.nan
    true = np.clip(probs[np.arange(len(label)), label], LOG_EPS, 1.0)
    return Score(
        segment_acc=float((probs.argmax(1) == label).mean()) if len(label) else np.nan,
        track_acc=track_acc,
        log_loss=float(-np.log(true).mean()) if len(label) else np.nan,
    )


def combine(probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted average (N, K) of the candidates' probabilities (``weights`` sum to 1)."""
    total = np.zeros(np.shape(probs[0]), dtype=np.float64)
    for p, w in zip(probs, weights, strict=True):
        if w:
            total += w * np.asarray(p, dtype=np.float64)
    return total


@dataclass(frozen=True)
class Selection:
    """What :func:`select` chose: ``counts`` per candidate over the ``kept`` rounds (weights =
    counts / kept), and the validation score of each nested ensemble, round by round."""

    counts: np.ndarray  # (M,) ints, summing to ``kept``
    kept: int  # rounds of the ensemble kept (1 = the start alone)
    rounds: int  # rounds run
    trajectory: list[Score]  # the ensemble's validation score after each round
    start: int

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.kept

    @property
    def members(self) -> list[int]:
        """Candidates with a nonzero weight, the start first, then by weight."""
        chosen = [i for i in np.flatnonzero(self.counts) if i != self.start]
        chosen.sort(key=lambda i: (-self.counts[i], i))
        return [self.start, *chosen]

    @property
    def score(self) -> Score:
        return self.trajectory[self.kept - 1]


def select(
    val_probs: list[np.ndarray],
    label: np.ndarray,
    track: np.ndarray,
    start: int = 0,
    rounds: int = DEFAULT_ROUNDS,
) -> Selection:
    """Greedy forward selection with replacement over the candidates' validation
    probabilities ``val_probs`` (each (N, K), the same segments), from candidate ``start``,
    for ``rounds`` rounds (the start is the first); the best nested ensemble is kept."""
    if not val_probs:
        raise ValueError("ensemble selection needs at least one candidate")
    if not 0 <= start < len(val_probs):
        raise ValueError(f"start must index one of the {len(val_probs)} candidates, got {start}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    library = [np.asarray(p, dtype=np.float64) for p in val_probs]
    counts = np.zeros(len(library), dtype=np.int64)
    counts[start] = 1
    total = library[start].copy()
    trajectory = [score(total, label, track)]
    history = [counts.copy()]
    for size in range(2, rounds + 1):
        scored = [score((total + p) / size, label, track) for p in library]
        # max() keeps the first of equal keys: the better-ranked candidate wins a full tie
        best = max(range(len(library)), key=lambda i: scored[i].key())
        counts[best] += 1
        total += library[best]
        trajectory.append(scored[best])
        history.append(counts.copy())
    # the best nested ensemble; max() keeps the first: the smaller one wins a full tie
    kept = max(range(len(trajectory)), key=lambda i: trajectory[i].key()) + 1
    return Selection(
        counts=history[kept - 1], kept=kept, rounds=rounds, trajectory=trajectory, start=start
    )
