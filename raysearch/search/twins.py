"""A searcher that does not start a network while the same network is running.

Two suggestions can build the same network: r = 31.43 and r = 32 give the same SE widths on
the report's channels, and both are among ratio.yaml's initial points, so they start side by
side. A finished network is never trained twice (:mod:`raysearch.search.finished_networks`
replays its reports), but two *running* twins both train. :class:`DeferTwins` wraps the space's
searcher: a suggestion whose network (:func:`raysearch.search.finished_networks.network_key`)
is running or held is held back, and another suggestion takes its place while the search has
trials left to ask for; when its twin ends, the held one is handed out and its trial replays
the twin's reports in moments.
If the twin ended without finishing (stopped by ASHA, failed), the held trial replays the
epochs the twin reported, where ASHA usually stops it too, and trains on only if it is not
stopped (:mod:`raysearch.search.finished_networks`). With ``repeats`` it wraps the
:class:`~raysearch.search.repeats.ResumableRepeater`: a seed is part of a network, so a seed's run
waits for the same seed's twin.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from ray.tune.search import Searcher

from raysearch.search.repeats import restore_state, saved_state


class DeferTwins(Searcher):
    """``inner`` with twins of running networks held back; ``key_of(config)`` names a
    configuration's network; ``limit`` is the number of trials the search runs."""

    def __init__(self, inner: Searcher, key_of: Callable[[dict], str], limit: int) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.key_of, self.limit = inner, key_of, limit
        self.asked = 0  # suggestions taken from inner, held ones included
        self.running: dict[str, str] = {}  # trial id → network key
        self.held: list[tuple[str, str, dict]] = []  # (inner trial id, network key, config)
        self.alias: dict[str, str] = {}  # trial id → the id inner knows the suggestion by

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        done = self.inner.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.inner.metric, self.inner.mode
        return done

    def suggest(self, trial_id: str):
        busy = set(self.running.values())
        for i, (inner_id, key, config) in enumerate(self.held):
            if key not in busy:  # its twin ended: now it replays (or trains, if it must)
                del self.held[i]
                return self._hand_out(trial_id, inner_id, key, config)
        attempt = 0
        while self.asked < self.limit:
            inner_id = trial_id if attempt == 0 else f"{trial_id}-{attempt}"
            config = self.inner.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self.asked += 1
            key = self.key_of(config)
            if key not in busy | {k for _, k, _ in self.held}:
                return self._hand_out(trial_id, inner_id, key, config)
            self.held.append((inner_id, key, config))
            attempt += 1
        return None  # every trial is asked for: wait for a held one's twin to end

    def _hand_out(self, trial_id: str, inner_id: str, key: str, config: dict) -> dict:
        self.running[trial_id] = key
        if inner_id != trial_id:
            self.alias[trial_id] = inner_id
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(self.alias.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self.running.pop(trial_id, None)
        self.inner.on_trial_complete(self.alias.get(trial_id, trial_id), result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        state = {k: getattr(self, k) for k in ("asked", "running", "held", "alias")}
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"state": state, "inner": saved_state(self.inner)}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            saved = pickle.load(f)
        for name, value in saved["state"].items():
            setattr(self, name, value)
        restore_state(self.inner, saved["inner"])
