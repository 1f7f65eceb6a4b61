"""The classical baseline's classifier: standardised features, scikit-learn's logistic
regression, its regularisation C chosen on the validation split only, then scored on test with
the CNN rows' own metrics (segment accuracy, and the track vote of
:func:`raysearch.metrics.classification_report`). No Ray, no torch.

Selection: every C of the grid is fitted on train; the one with the best validation segment
accuracy wins (the search's own metric, ``best_val_acc``), the smaller C on a tie (the
stronger regularisation). Test labels are read once, after the choice, to score it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from raysearch.errors import UserError
from raysearch.metrics import classification_report

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # decades around scikit-learn's default C = 1


class ClassifierConfigError(UserError):
    """A baseline classifier setting is unusable; the message names it."""


@dataclass(frozen=True)
class ClassifierConfig:
    """The logistic regression and the C values tried on validation."""

    c_grid: tuple[float, ...] = C_GRID
    max_iter: int = 1000  # lbfgs iterations; the largest C may stop short (recorded, not fatal)

    def __post_init__(self) -> None:
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ClassifierConfigError(f"c_grid must hold positive numbers, got {self.c_grid!r}")
        if self.max_iter < 1:
            raise ClassifierConfigError(f"max_iter must be >= 1, got {self.max_iter!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FeatureSplit:
    """One split's features: ``x`` (N, D), ``label`` (N,) int, ``track_id`` (N,)."""

    x: np.ndarray
    label: np.ndarray
    track_id: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class Scores:
    """Segment and track accuracy of one split (fractions), and its size."""

    segment_acc: float
    track_acc: float
    segments: int
    tracks: int


@dataclass(frozen=True)
class Fit:
    """What :func:`fit_and_score` found: the chosen C, the validation accuracy of every C
    (grid order), the chosen model's validation and test scores."""

    c: float
    val_acc_by_c: tuple[float, ...]
    val: Scores
    test: Scores
    converged: bool  # lbfgs converged for the chosen C
    fit_s: float


def fit_model(x: np.ndarray, label: np.ndarray, c: float, config: ClassifierConfig):
    """Standardisation (fitted on ``x``) + multinomial logistic regression with this C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=config.max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: recorded in Fit.converged
        model.fit(x, label)
    return model


def probabilities(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) class probabilities; a class missing from training gets 0."""
    probs = np.zeros((len(x), n_classes))
    probs[:, model.classes_] = model.predict_proba(x)
    return probs


def scores(model, split: FeatureSplit, class_names: list[str]) -> Scores:
    """Segment accuracy and track accuracy (the vote the CNN rows use) of ``split``."""
    report = classification_report(
        probabilities(model, split.x, len(class_names)), split.label, split.track_id, class_names
    )
    return Scores(report["segment_acc"], report["track_acc"], report["segments"], report["tracks"])


def choose_c(
    train: FeatureSplit, val: FeatureSplit, config: ClassifierConfig
) -> tuple[int, list[float], list]:
    """Fit every C on train and score it on validation: (index of the chosen C, validation
    segment accuracy of each C, the fitted models). Sees no test data."""
    models, accuracies = [], []
    for c in config.c_grid:
        model = fit_model(train.x, train.label, c, config)
        models.append(model)
        accuracies.append(float((model.predict(val.x) == val.label).mean()))
    best = max(range(len(accuracies)), key=lambda i: (accuracies[i], -config.c_grid[i]))
    return best, accuracies, models


def fit_and_score(
    train: FeatureSplit,
    val: FeatureSplit,
    test: FeatureSplit,
    class_names: list[str],
    config: ClassifierConfig = ClassifierConfig(),
) -> Fit:
    """Choose C on validation (:func:`choose_c`), then score that model on val and test."""
    started = time.perf_counter()
    best, accuracies, models = choose_c(train, val, config)
    chosen = models[best]
    iterations = int(np.max(chosen[-1].n_iter_))
    return Fit(
        c=float(config.c_grid[best]),
        val_acc_by_c=tuple(accuracies),
        val=scores(chosen, val, class_names),
        test=scores(chosen, test, class_names),
        converged=iterations < config.max_iter,
        fit_s=time.perf_counter() - started,
    )
