"""The accuracy-size front: which networks no other beats on validation accuracy without more
parameters. numpy only.

A network is on the (Pareto) front when no other network has at least its validation accuracy
with at most its parameters and is strictly better in one of the two. Two trials of one
network (twins) share their point and are both on the front or both off it.
"""

from __future__ import annotations

import numpy as np


def pareto_front(accuracy, parameters) -> np.ndarray:
    """(N,) bool: whether each point (higher ``accuracy`` is better, fewer ``parameters`` is
    better) is on the front. Points with a missing value are never on it."""
    accuracy = np.asarray(accuracy, dtype=float)
    parameters = np.asarray(parameters, dtype=float)
    valid = ~(np.isnan(accuracy) | np.isnan(parameters))
    on = np.zeros(len(accuracy), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid.copy()
        others[i] = False
        at_least = others & (accuracy >= accuracy[i]) & (parameters <= parameters[i])
        strictly = (accuracy > accuracy[i]) | (parameters < parameters[i])
        on[i] = not (at_least & strictly).any()
    return on


def front_line(accuracy, parameters) -> tuple[np.ndarray, np.ndarray]:
    """The front's points sorted by parameters (x) with their accuracies (y), for a plot."""
    on = pareto_front(accuracy, parameters)
    x = np.asarray(parameters, dtype=float)[on]
    y = np.asarray(accuracy, dtype=float)[on]
    order = np.lexsort((y, x))
    return x[order], y[order]
