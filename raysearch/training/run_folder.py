"""The run folder of ``python -m raysearch.train``: ``metrics.csv`` (one row per epoch),
``summary.json``, ``checkpoint/`` and the plots (report figures 5.1 / 5.2, a confusion matrix)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil

from raysearch.data import GENRES
from raysearch.model import ModelConfig
from raysearch.storage import write_text_atomic
from raysearch.training.config import TrainConfig

EPOCH_COLUMNS = [
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_track_acc",
    "segments_per_s",
    "epoch_s",
]


def write_run_folder(
    out: str,
    final: dict,
    checkpoint_dir: str | None,
    model_config: ModelConfig,
    config: TrainConfig,
    shards: str,
    wall_s: float,
) -> None:
    from raysearch.results import plots  # matplotlib only when a run folder is written

    os.makedirs(out, exist_ok=True)
    history = final.get("history", [])
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(os.path.join(out, "metrics.csv"), table.getvalue())
    if checkpoint_dir:
        target = os.path.join(out, "checkpoint")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(checkpoint_dir, target)
    summary = {k: v for k, v in final.items() if k != "history"}
    summary.update(
        model=model_config.to_dict(), train=config.to_dict(), shards=shards, wall_s=round(wall_s, 2)
    )
    write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=1))
    if history:
        plots.training_curves(
            history, os.path.join(out, "accuracy.png"), os.path.join(out, "loss.png")
        )
    if final.get("test_confusion"):
        plots.confusion(
            final["test_confusion"],
            list(GENRES),
            os.path.join(out, "confusion.png"),
            title=f"test tracks, accuracy {final['test_track_acc']:.3f}",
        )
