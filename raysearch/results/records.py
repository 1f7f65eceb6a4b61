"""The trials of a search as plain records, from a running Tune loop or an experiment folder,
and the metadata a search saves beside its experiment (its space and its shards)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from raysearch.search.space import SearchSpace, parse_space
from raysearch.storage import exists, join, location_of, read_text, write_text_atomic

EXPERIMENT_FILE = "raysearch_experiment.json"  # the space (as run) and the shards
OLD_SPACE_FILE = "raysearch_space.json"  # the space alone (experiments before it)


@dataclass
class TrialRecord:
    trial_id: str
    config: dict
    last_result: dict
    status: str  # completed | stopped early | no result | error | running | pending
    checkpoint: str = ""  # the trial's latest checkpoint: model.pt holds its best weights


def status_of(tune_status: str, last_result: dict) -> str:
    if tune_status == "TERMINATED":
        if "training_iteration" not in last_result:  # Tune adds it to every report
            return "no result"  # ended before its first report (a time budget, a stop)
        # only a run that reached its end evaluates the test split (ASHA-stopped ones do not);
        # Tune's own "done" key is not reliable inside callbacks, so it is not used
        return "completed" if "test_acc" in last_result else "stopped early"
    return {"ERROR": "error", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}.get(
        tune_status, tune_status.lower()
    )


TRAIN_CHECKPOINT_KEY = "checkpoint_path"  # ray.tune.integration.ray_train's report key


def checkpoint_path(trial) -> str:
    """Where the trial's latest checkpoint is: a local path, or a URI when the experiment's
    storage is a bucket (Ray keeps the bucket in the checkpoint's filesystem, not its path).

    A trial run by a Ray Train worker group has no Tune checkpoint: Train stored it (in the
    experiment's storage, ``train_runs/``) and ``TuneReportCallback`` put its path in the
    report instead, a path in the trial's storage filesystem."""
    checkpoint = getattr(trial, "checkpoint", None)
    path = getattr(checkpoint, "path", "") or ""
    filesystem = getattr(checkpoint, "filesystem", None)
    if not path:
        path = str((trial.last_result or {}).get(TRAIN_CHECKPOINT_KEY) or "")
        filesystem = getattr(getattr(trial, "storage", None), "storage_filesystem", None)
    return location_of(filesystem, path)


def record_of(trial, status: str | None = None) -> TrialRecord:
    result = dict(trial.last_result or {})
    return TrialRecord(
        trial.trial_id,
        dict(trial.config),
        result,
        status or status_of(trial.status, result),
        checkpoint_path(trial),
    )


def records_from_experiment(experiment: str) -> list[TrialRecord]:
    """Trial records of an experiment folder (finished or interrupted), read from storage."""
    from ray.tune import ExperimentAnalysis

    return [record_of(t) for t in ExperimentAnalysis(experiment).trials]


def save_experiment(experiment: str, space: SearchSpace, meta: dict) -> None:
    payload = {"space": space.raw, "space_source": space.source, **meta}
    write_text_atomic(join(experiment, EXPERIMENT_FILE), json.dumps(payload, indent=1))


def load_experiment(experiment: str) -> tuple[SearchSpace, dict]:
    """The space an experiment ran with and its metadata (``shards``, ``features``,
    ``split_level``; empty for experiments saved before they were recorded)."""
    location = join(experiment, EXPERIMENT_FILE)
    if exists(location):
        payload = json.loads(read_text(location))
        space = parse_space(payload.pop("space"), location)
        # named after the file it was read from when the search started (tables, messages)
        source = payload.pop("space_source", "") or location
        return dataclasses.replace(space, source=source), payload
    location = join(experiment, OLD_SPACE_FILE)
    return parse_space(json.loads(read_text(location)), location), {}
