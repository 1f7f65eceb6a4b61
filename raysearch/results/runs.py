"""The driver runs of one experiment: a search started once and resumed any number of times.

``EXPERIMENT/_raysearch/runs.json`` keeps, per run, when it began, when it was last seen at work
(rewritten whenever a trial ends, so a driver that is killed leaves the time of its last
finished trial) and what the driver's GPU monitor saw. Their sum is the search's own running
time: a search stopped and resumed later is not charged for the time in between.

A run can begin before Tune does: the compile warm-up (:mod:`raysearch.search.warmup`) runs
before the first trial and is recorded by :func:`record_warmup` as the start of a run that
Tune's callback (:meth:`RunLog.begin`) then continues, so its time is in the wall time.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from raysearch.storage import exists, join, read_text, write_text_atomic

# in a folder of its own: on resume Tune copies the experiment's top-level .json files into its
# staging folder and uploads them back at every save, which put a copy from the resume's start
# over what this driver wrote since (its runs were lost when it was killed)
RUNS_FILE = "_raysearch/runs.json"
OLD_RUNS_FILE = "raysearch_runs.json"  # where experiments before it kept them


def read_runs(experiment: str) -> list[dict]:
    """Every run recorded for ``experiment`` (``[]`` for one recorded before runs were)."""
    if not experiment:
        return []
    location = join(experiment, RUNS_FILE)
    if not exists(location):
        location = join(experiment, OLD_RUNS_FILE)
    if not exists(location):
        return []
    try:
        return list(json.loads(read_text(location)))
    except (OSError, ValueError):
        return []


def running_time(runs: list[dict]) -> float:
    """Seconds the search's drivers were at work, summed over its runs."""
    return sum(max(0.0, run["last_seen"] - run["started"]) for run in runs)


@dataclass
class RunLog:
    """This driver's entry in the experiment's runs: :meth:`begin` adds it, :meth:`tick`
    marks it at work now (with what ``monitor`` saw of the GPUs, when there is one)."""

    experiment: str
    index: int
    monitor: object | None = None  # a raysearch.search.gpu_monitor.GpuMonitor
    runs: list[dict] = field(default_factory=list)

    @classmethod
    def begin(cls, experiment: str, monitor: object | None = None) -> RunLog:
        """This driver's run: the one :func:`record_warmup` began, or a new one."""
        runs = read_runs(experiment)
        now = time.time()
        if runs and runs[-1].get("before_tune") == os.getpid():  # this driver's warm-up
            del runs[-1]["before_tune"]
            runs[-1]["last_seen"] = now
        else:
            runs.append({"started": now, "last_seen": now, "resumed": bool(runs)})
        log = cls(experiment, len(runs) - 1, monitor, runs)
        log._write()
        return log

    def tick(self) -> None:
        run = self.runs[self.index]
        run["last_seen"] = time.time()
        use = self.monitor.use() if self.monitor is not None else None
        if use is not None:
            run["gpu"] = use.to_dict()
        self._write()

    def _write(self) -> None:
        write_text_atomic(join(self.experiment, RUNS_FILE), json.dumps(self.runs, indent=1))


def record_warmup(experiment: str, started: float, warmup: dict) -> None:
    """Begin this driver's run at ``started``, before Tune, with what the compile warm-up did
    (:meth:`raysearch.search.warmup.WarmUp.to_dict`); :meth:`RunLog.begin` continues it."""
    runs = read_runs(experiment)
    runs.append(
        {
            "started": started,
            "last_seen": time.time(),
            "resumed": bool(runs),
            "warmup": warmup,
            "before_tune": os.getpid(),  # the driver whose Tune callback continues the run
        }
    )
    write_text_atomic(join(experiment, RUNS_FILE), json.dumps(runs, indent=1))


def warmup_totals(runs: list[dict]) -> dict | None:
    """The compile warm-ups of every run: seconds and graphs summed (None: there was none)."""
    warm = [run["warmup"] for run in runs if run.get("warmup")]
    if not warm:
        return None
    return {
        "seconds": round(sum(w["seconds"] for w in warm), 1),
        "graphs_compiled": sum(w["graphs_compiled"] for w in warm),
        "graphs_cached": sum(w["graphs_cached"] for w in warm),
        "configurations": len(warm[-1]["configurations"]),
    }
