"""Connecting to a Ray cluster (never done at import time), and the environment settings Ray
Tune, Ray Train and MLflow read, set in this one place."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

WORKER_GROUP_START_TIMEOUT_S = 900  # a GPU node may take minutes to boot

# Each is a default: a value the user exported wins (os.environ.setdefault).
ENVIRONMENT = {
    # Save the experiment state at most a second after a trial ends (Tune's default is every
    # 10 s or more), so a driver killed right after a trial finished does not re-run it.
    "TUNE_GLOBAL_CHECKPOINT_S": "1",
    # Every trial checkpoint forces an experiment-state snapshot and Ray warns each time two
    # come within 5 s: three lines per epoch. A snapshot costs the driver ~1 % of its time
    # (docs/performance.md), so the warning is noise here.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Ray 2.60's default output ignores a progress reporter (raysearch.search.run's table).
    "RAY_AIR_NEW_OUTPUT": "0",
    # Ray Train gives up on a worker group that cannot start within 60 s; a run waiting for a
    # GPU node to boot needs longer. Train propagates this variable to its controller.
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(WORKER_GROUP_START_TIMEOUT_S),
    # MLflow 3 keeps its file store (--mlflow file:PATH) behind this switch; a user who names
    # a file: URI chose it (sqlite:/// or a server needs no switch).
    "MLFLOW_ALLOW_FILE_STORE": "true",
}


def set_environment() -> None:
    """Set :data:`ENVIRONMENT`'s defaults in this process (before Tune or Train starts: their
    processes inherit them)."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)


@dataclass(frozen=True)
class RayOptions:
    """Which Ray cluster a command uses: ``address`` (or ``$RAY_ADDRESS``) to join one, else a
    local instance with ``num_cpus`` CPUs (all of the machine's when None)."""

    address: str | None = None
    num_cpus: int | None = None

    def connect(self) -> None:
        init_ray(self.address, self.num_cpus)


def init_ray(
    address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None
) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``) if given, else start a local Ray instance.

    ``num_cpus`` / ``num_gpus`` only apply to a local instance; a cluster has its own.
    """
    import ray

    set_environment()
    if ray.is_initialized():
        return
    kwargs: dict = {
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
