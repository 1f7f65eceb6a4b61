"""The Tune callback that rewrites ``results/`` whenever a trial ends."""

from __future__ import annotations

import os

from ray.tune import Callback

from raysearch.results.records import record_of, save_experiment, status_of
from raysearch.results.runs import RunLog
from raysearch.results.write import write_results
from raysearch.search.gpu_monitor import GpuMonitor
from raysearch.search.space import SearchSpace


class LeaderboardCallback(Callback):
    """Rewrite the results after every finished or failed trial; plots at the end only (they
    cost a fraction of a second of the driver's CPU each time).

    Each driver run (the first, and every ``--resume``: Tune restores this callback and calls
    ``setup`` again) is recorded in the experiment's runs, marked at work whenever a trial
    ends, with the driver's GPU monitor (:mod:`raysearch.results.runs`)."""

    def __init__(self, space: SearchSpace, results_dir: str, experiment: str, meta: dict) -> None:
        self.space = space
        self.results_dir = os.path.abspath(results_dir)
        self.experiment = experiment
        self.meta = meta
        self.run_log: RunLog | None = None
        self.monitor: GpuMonitor | None = None

    def __getstate__(self) -> dict:
        # Tune saves its callbacks with the experiment; a run's clock and sampling thread
        # belong to the driver run that started them, never to a resumed one
        return {**self.__dict__, "run_log": None, "monitor": None}

    def setup(self, **info) -> None:
        save_experiment(self.experiment, self.space, self.meta)
        self.monitor = GpuMonitor().start()
        self.run_log = RunLog.begin(self.experiment, self.monitor)

    def _refresh(self, trials, ended=None, ended_status: str = "", plots: bool = False) -> None:
        if self.run_log is not None:
            self.run_log.tick()
        # the trial that just ended still shows its old status while callbacks run
        records = [record_of(t, ended_status if t is ended else None) for t in trials]
        write_results(
            self.space, records, self.results_dir, self.experiment, self.meta, plots=plots
        )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._refresh(trials, trial, status_of("TERMINATED", trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._refresh(trials, trial, "error")

    def on_experiment_end(self, trials, **info) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        self._refresh(trials, plots=True)
