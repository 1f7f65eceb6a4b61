"""Kill a search's driver at random moments, resume it each time, and check that nothing was
lost: the way stores that are trusted with data test their durability (a seeded schedule of
SIGKILLs, some of them inside the searcher's save, whose window a hook in the driver makes
wide). Used by tests/test_tune.py (local storage) and tests/test_s3.py (a bucket).

While the first driver runs, two more commands are tried on the same experiment: a new search
of the same name (refused: the experiment exists) and a ``--resume`` (refused: the running
driver holds the lease); neither may touch the experiment or its results.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

SAVE_PAUSE_S = 2.0  # how long the hooked save holds the driver with the journal ahead

# imported by the driver's interpreter (sitecustomize): the searcher's save pauses after the
# journal is written and before Tune's own state is, and says when it is there
HOOK = textwrap.dedent(
    """
    import os, time
    import raysearch.search.journal as journal

    def save(self, checkpoint_path):
        if self.journal is not None:
            self.journal.push()
        with open(os.environ["RAYSEARCH_TEST_IN_SAVE"], "a") as marker:
            marker.write(f"{time.time()}\\n")
        time.sleep(float(os.environ["RAYSEARCH_TEST_SAVE_PAUSE_S"]))
        journal.OptunaSearch.save(self, checkpoint_path)

    journal.MirroringOptunaSearch.save = save
    """
)


@dataclass
class KillLoop:
    """``command`` (a ``python -m raysearch.tune`` without ``--resume``) run, killed and
    resumed; ``kills`` SIGKILLs at moments drawn from ``seed``."""

    command: list[str]
    workdir: Path
    kills: int = 5
    seed: int = 0
    env: dict = field(default_factory=dict)
    cwd: Path | None = None  # where the drivers run
    # the last --resume: another folder and environment (a new head, its cache gone)
    final_cwd: Path | None = None
    final_env: dict | None = None
    # called before the last --resume (e.g. to take away what a kill could have taken away)
    before_last: object | None = None
    refused: dict = field(default_factory=dict)  # what the two extra commands said
    killed_at: list = field(default_factory=list)  # (kind, seconds into the driver's life)

    def _environment(self) -> dict:
        hook = self.workdir / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(HOOK)
        path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, **self.env, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1",
                "RAYSEARCH_TEST_IN_SAVE": str(self.workdir / "in-save"),
                "RAYSEARCH_TEST_SAVE_PAUSE_S": str(SAVE_PAUSE_S)}  # fmt: skip

    def _saves(self) -> int:
        marker = self.workdir / "in-save"
        return len(marker.read_text().splitlines()) if marker.exists() else 0

    def run(self, while_running=None) -> subprocess.CompletedProcess:
        """The kills, then a last ``--resume`` to the end (returned). ``while_running(self)``
        is called once, early in the first driver's life."""
        rng, env = random.Random(self.seed), self._environment()
        life = 0
        while len(self.killed_at) < self.kills:
            command = self.command + (["--resume"] if life else [])
            log = open(self.workdir / f"driver-{life}.log", "w")
            driver = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      cwd=self.cwd, start_new_session=True)  # fmt: skip
            started = time.time()
            if life == 0 and while_running is not None:
                self._wait_for_trials(driver)
                while_running(self)
            kind = rng.choice(["inside a save", "at random"])
            # the moments are drawn once this driver's trials train (an epoch reported): a
            # kill while it imports and restores would test little
            self._wait_for_epoch(driver, self.workdir / f"driver-{life}.log")
            if kind == "inside a save":  # the journal written, Tune's state not yet
                self._wait_for_saves(driver, self._saves() + 1)
                time.sleep(rng.uniform(0.1, SAVE_PAUSE_S - 0.3))
            else:
                time.sleep(rng.uniform(0.0, 6.0))
            if driver.poll() is not None:  # it finished before its kill
                log.close()
                return subprocess.CompletedProcess(command, driver.returncode, "", "")
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            log.close()
            self.killed_at.append((kind, round(time.time() - started, 1)))
            life += 1
        if self.before_last is not None:
            self.before_last(self)
        final_env = {**env, **(self.final_env or {})}
        last = subprocess.run(self.command + ["--resume"], env=final_env, capture_output=True,
                              text=True, timeout=600, cwd=self.final_cwd or self.cwd)  # fmt: skip
        (self.workdir / "driver-last.log").write_text(last.stdout + last.stderr)
        return last

    def _wait_for_epoch(self, driver, log: Path) -> None:
        deadline = time.time() + 120
        while driver.poll() is None and time.time() < deadline:
            if " epoch " in log.read_text():  # a trial's line, as the driver prints it
                return
            time.sleep(0.1)

    def _wait_for_saves(self, driver, count: int) -> None:
        deadline = time.time() + 120
        while self._saves() < count and driver.poll() is None and time.time() < deadline:
            time.sleep(0.05)

    def _wait_for_trials(self, driver) -> None:
        """Until the first driver has saved once (its experiment exists, trials run)."""
        deadline = time.time() + 120
        while self._saves() == 0 and time.time() < deadline:
            assert driver.poll() is None, "the first driver ended before it could be tested"
            time.sleep(0.1)

    def try_command(self, *extra: str) -> subprocess.CompletedProcess:
        """Another ``tune`` on the same experiment while the driver runs (no hook)."""
        env = {**os.environ, **self.env}
        return subprocess.run(self.command + list(extra), capture_output=True, text=True,
                              timeout=120, env=env, cwd=self.cwd)  # fmt: skip


def study_of(journal: Path, name: str):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )


def trial_errors(experiment: str) -> str:
    """The error files of the experiment's trials (path or URI), for a failure's message."""
    from pyarrow.fs import FileSelector

    from raysearch.storage import join, read_text, resolve

    filesystem, path = resolve(experiment)
    found = filesystem.get_file_info(FileSelector(path, recursive=True))
    errors = [info.path for info in found if info.base_name == "error.txt"]
    prefix = experiment[: len(experiment) - len(path)] if experiment.endswith(path) else ""
    return "\n".join(read_text(join(prefix + p)) if prefix else read_text(p) for p in errors)


def check_nothing_lost(board, experiment_trials: set[str], study, space, shards: str) -> None:
    """What a search killed and resumed any number of times must still hold: the leaderboard's
    trials are the experiment's; each of them is in the study exactly once, finished with the
    value the leaderboard shows; any other trial of the study was closed with a reason; and
    the best configuration is what its seed trains to, uninterrupted."""
    import optuna

    from raysearch.search.journal import CLOSED_ATTR

    assert set(board["trial_id"]) == experiment_trials
    shown = board[["trial_id", "status", "ratio", "best_val_acc"]].to_string()
    assert set(board["status"]) == {"completed"} and len(board) == space.trials, shown
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    others = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["ratio"] for t in finished) == sorted(board["ratio"])
    values = dict(zip(board["ratio"], board["best_val_acc"], strict=True))
    for trial in finished:
        assert trial.value == values[trial.params["ratio"]]
    assert all(t.state == optuna.trial.TrialState.FAIL and CLOSED_ATTR in t.system_attrs
               for t in others)  # fmt: skip
    best = board.iloc[0]
    assert best["best_val_acc"] == board["best_val_acc"].max()
    assert uninterrupted(space, shards, best["ratio"]) == best["best_val_acc"]


def uninterrupted(space, shards: str, ratio: float) -> float:
    """The best validation accuracy the configuration trains to in one run, here (the same
    seed, the same torch thread count as a trial: 1)."""
    import torch

    from raysearch.training.data import load_splits, model_config_for, sized_as
    from raysearch.training.loop import Placement, fit

    model, train = space.configs_for({"ratio": ratio})
    final = fit(sized_as(model, model_config_for(shards)), train, load_splits(shards),
                lambda metrics, _: None, Placement(torch.device("cpu")))  # fmt: skip
    return final["best_val_acc"]
