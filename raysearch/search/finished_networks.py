"""Finished networks of an experiment, so that no search trains the same network twice.

Two trials can ask for the same network: r = 31.43 and r = 32 both give SE widths
``max(1, round(C / r))`` = (1, 2, 4, 8, 4) on the report's channels, and TPE over a continuous
r keeps proposing ratios that round alike. A trial's *key* is everything that decides what it
trains and how: the model settings (input size and standardisation included), the training
dimensions and the seed — not where or how fast it runs (workers, devices, threads, precision,
compilation). A completed trial leaves ``_networks/<key>.json`` in the experiment folder (its
per-epoch reports and final metrics); a later trial with the same key reports those again
(so Optuna and ASHA see the same curve) with ``reused_from`` naming the first trial, instead of
training. A suggestion whose twin is still running is held back by the searcher until the twin
ends (:mod:`raysearch.search.twins`; with ``repeats``, a seed's run waits for the same seed's twin).

A trial that ends before its last epoch (a scheduler such as ASHA stopped it, or it failed)
leaves ``_networks/<key>.partial.json``: its reports so far, written before each report (a
stopped trial's process ends inside the report that stopped it). A later twin reports those
again, and the scheduler usually stops it at the same point; if it does not, the twin trains
from the start without reporting the epochs it replayed (the same seed gives the same epochs)
and goes on from there. The last trial to write a key's partial record wins.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from raysearch.model import ModelConfig, reduced_width
from raysearch.search.dimensions import RUNTIME_TRAIN_KEYS
from raysearch.storage import exists, join, read_text, write_text_atomic
from raysearch.training.config import TrainConfig

FOLDER = "_networks"
PLACEMENT_KEYS = ("workers", "use_gpu", "cpus_per_worker", "gpus_per_worker")


def effective_model(model: ModelConfig) -> dict:
    """The model settings with r replaced by what it builds: each block's SE width."""
    settings = model.to_dict()
    settings.pop("ratio")
    settings["se_widths"] = [
        reduced_width(c, model.ratio) if i + 1 in model.se_blocks else 0
        for i, c in enumerate(model.channels)
    ]
    return settings


def network_key(model: ModelConfig, train: TrainConfig, shards: str) -> str:
    settings = {k: v for k, v in train.to_dict().items()
                if k not in RUNTIME_TRAIN_KEYS + PLACEMENT_KEYS}  # fmt: skip
    text = json.dumps({"model": effective_model(model), "train": settings, "shards": shards},
                      sort_keys=True, default=list)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def location(experiment: str, key: str, partial: bool = False) -> str:
    """Where the record of a network lives: ``<key>.json``, or ``<key>.partial.json`` for the
    reports of a trial that ended early."""
    return join(experiment, FOLDER, f"{key}{'.partial' if partial else ''}.json")


def lookup(experiment: str, key: str, partial: bool = False) -> dict | None:
    """The finished trial with this key (``{"trial_id", "reports"}``, its last report with the
    test metrics), or with ``partial`` the reports a trial of this key made before it ended
    early; None when there is none."""
    path = location(experiment, key, partial)
    if not exists(path):
        return None
    try:
        return json.loads(read_text(path))
    except (OSError, ValueError):
        return None  # half-written by a killed driver: train again


def replay_reports(final: dict) -> list[dict]:
    """What a twin of a finished trial reports: its per-epoch reports, the last one with the
    test metrics. ``final`` is the loop's last report, which carries the ``history``."""
    reports = [dict(h) for h in final["history"]]
    reports[-1] = {k: v for k, v in final.items() if k != "history"}
    return reports


def record(experiment: str, key: str, trial_id: str, reports: list[dict]) -> None:
    """Keep a completed trial's reports (the last one with its test metrics)."""
    payload = {"trial_id": trial_id, "reports": reports}
    write_text_atomic(location(experiment, key), json.dumps(payload, default=str))


@dataclass(frozen=True)
class Record:
    """Where a trial keeps its network's reports: ``keep`` takes the loop's last report."""

    experiment: str
    key: str
    trial_id: str

    def keep(self, final: dict) -> None:
        record(self.experiment, self.key, self.trial_id, replay_reports(final))

    def keep_partial(self, reports: list[dict]) -> None:
        """The reports of epochs 1..n so far (the trial may end at the next report)."""
        payload = {"trial_id": self.trial_id, "reports": reports}
        write_text_atomic(
            location(self.experiment, self.key, partial=True), json.dumps(payload, default=str)
        )
