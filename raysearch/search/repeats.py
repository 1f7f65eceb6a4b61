"""Repeats of a configuration (``repeats: k``, seeds 0..k-1) that survive a resumed search.

Tune's ``Repeater`` groups the k runs of each suggestion and tells the searcher their mean once
all k have ended. In Ray 2.60 its ``save``/``restore`` keep only the inner searcher's state,
not the groups, so after ``--resume`` the first run of a group that was under way to end raised
``KeyError`` in ``Repeater.on_trial_complete`` and the search stopped
(``tests/test_tune.py::test_resume_of_a_search_with_repeats``). :class:`ResumableRepeater`
keeps both.
"""

from __future__ import annotations

import os
import pickle
import tempfile

from ray.tune.search import Repeater, Searcher


def saved_state(searcher: Searcher) -> bytes:
    """What ``searcher.save`` writes, as bytes (a wrapper keeps them in its own checkpoint)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "searcher.pkl")
        searcher.save(path)
        with open(path, "rb") as f:
            return f.read()


def restore_state(searcher: Searcher, state: bytes) -> None:
    """``searcher.restore`` from bytes that :func:`saved_state` returned."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "searcher.pkl")
        with open(path, "wb") as f:
            f.write(state)
        searcher.restore(path)


class ResumableRepeater(Repeater):
    """Tune's ``Repeater`` whose checkpoint holds its groups as well as the inner searcher."""

    def save(self, checkpoint_path: str) -> None:
        payload = {"groups": self.get_state(), "inner": saved_state(self.searcher)}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(payload, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            payload = pickle.load(f)
        self.set_state(payload["groups"])
        restore_state(self.searcher, payload["inner"])
