"""Probe: Ray Train V2 local mode inside a Tune trial, against a plain function trainable.

Three trivial trials one after the other, each reading 64 rows and reporting two epochs with a
checkpoint, run two ways in one Ray instance:

* **local mode**: the trial builds ``TorchTrainer(loop, ScalingConfig(num_workers=0),
  datasets={"train": ds})`` and calls ``fit()``; the loop reads its Ray Data shard with
  ``ray.train.get_dataset_shard`` and reports with ``ray.tune.report`` (in 2.60,
  ``ray.train.report`` and ``ray.train.get_context`` raise a DeprecationWarning there);
* **plain**: the trial runs the loop itself, the rows from the object store.

It prints the seconds of each way and whether its trials finished: the reason
``raysearch.training.runner`` runs one-worker trials as plain function trainables.

    python benchmarks/train_local_mode_probe.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from machine import REPO, say, start_local_ray  # first: puts the checkout on sys.path


def loop(rows: int, where: str) -> None:
    import ray.tune

    for epoch in range(2):
        folder = tempfile.mkdtemp()
        Path(folder, "state").write_text(str(epoch))
        ray.tune.report(
            {"epoch": epoch, "rows": rows, "where": where},
            checkpoint=ray.tune.Checkpoint.from_directory(folder),
        )


def local_mode_trial(config: dict, dataset) -> None:
    import ray.train
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    def train_loop():
        shard = ray.train.get_dataset_shard("train")
        rows = sum(len(b["data"]) for b in shard.iter_batches(batch_size=16))
        loop(rows, "local mode")

    TorchTrainer(
        train_loop, scaling_config=ScalingConfig(num_workers=0), datasets={"train": dataset}
    ).fit()


def plain_trial(config: dict, array_ref: list) -> None:
    import ray

    loop(len(ray.get(array_ref[0])), "plain")


def main() -> int:
    import numpy as np
    import ray
    from ray import tune

    start_local_ray(2, REPO)
    array = np.zeros((64, 4), dtype=np.float32)
    ways = {
        "local mode": tune.with_parameters(local_mode_trial, dataset=ray.data.from_numpy(array)),
        "plain": tune.with_parameters(plain_trial, array_ref=[ray.put(array)]),
    }
    storage = tempfile.mkdtemp(prefix="local-mode-probe-")
    for name, trainable in ways.items():
        started = time.perf_counter()
        results = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(num_samples=3, max_concurrent_trials=1),
            run_config=tune.RunConfig(name=name.replace(" ", "-"), storage_path=storage, verbose=0),
        ).fit()
        seconds = time.perf_counter() - started
        finished = sum(1 for r in results if r.error is None and r.metrics.get("rows") == 64)
        errors = {type(r.error).__name__ + ": " + str(r.error)[:120] for r in results if r.error}
        say(f"{name}: 3 trials in {seconds:.1f} s, {finished} finished {sorted(errors) or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
