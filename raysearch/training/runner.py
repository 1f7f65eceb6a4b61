"""Where the training loop runs, and how it reports.

* **In the trial's own process** (one worker, the default): a Tune function trainable calls
  :func:`raysearch.training.loop.fit` directly and reports with ``ray.tune.report``. The trial
  holds its CPU / GPU share itself; nothing else starts. Ray Train's local mode
  (``ScalingConfig(num_workers=0)``) would be the Train-flavoured way, but inside Tune it
  refuses ``ray.train.report`` / ``get_context`` and its Ray Data shard made 3 trivial trials
  take 10.5 s instead of 3.2 s here (``benchmarks/train_local_mode_probe.py``), so it is not
  used.
* **In a Ray Train worker group** (``workers > 1``, DDP; and ``python -m raysearch.train``,
  which needs Ray to place the run on a GPU node of a cluster): a ``TorchTrainer`` runs the
  same ``fit`` on every rank and reports with ``ray.train.report``; inside a search,
  ``TuneReportCallback`` forwards the reports to Tune.

The splits travel as one object in Ray's object store (put once by the driver), never as
per-trial Parquet reads or Ray Data executions.
"""

from __future__ import annotations

import os

from raysearch.model import ModelConfig
from raysearch.training.config import TrainConfig
from raysearch.training.loop import Placement, fit

_RUNS_IN_THIS_PROCESS: list[float] = []  # when each run handed to this process began


POOL_IDLE_S = 20.0  # a process older than this when it first imported raysearch waited in a pool


def run_started_at() -> float:
    """When the run just handed to this process began: for its first run, the process's own
    start (its imports and set-up count; :func:`first_run_began`), else now (a Tune actor
    reused for the next trial)."""
    import time

    import psutil

    import raysearch

    now = time.time()
    first = not _RUNS_IN_THIS_PROCESS
    _RUNS_IN_THIS_PROCESS.append(now)
    return first_run_began(psutil.Process().create_time(), raysearch.IMPORTED_AT) if first else now


def first_run_began(created: float, imported: float) -> float:
    """When a process's first run began: the process's start, unless the process waited in
    Ray's worker pool before it was handed the run (Ray starts workers ahead and leases an idle
    one to a new task or actor; the run then first imports raysearch, ``POOL_IDLE_S`` or more
    after the process started), in which case that import."""
    return imported if imported - created > POOL_IDLE_S else created


def pick_device(use_gpu: bool):
    """(device, note) for a process that Ray gave ``use_gpu`` GPUs (via CUDA_VISIBLE_DEVICES).

    A node whose GPU resource has no CUDA behind it (Ray's fake autoscaler, a broken driver)
    trains on its CPUs; the note says so in the trial's log and result.
    """
    import torch

    if use_gpu and torch.cuda.is_available():
        return torch.device("cuda", 0), ""
    if use_gpu:
        return (
            torch.device("cpu"),
            "a GPU was requested and assigned, but CUDA is not "
            "available on this node: training on its CPUs",
        )
    return torch.device("cpu"), ""


def scalars(metrics: dict) -> dict:
    """What a per-epoch report carries (the epoch history goes back as a return value only)."""
    return {k: v for k, v in metrics.items() if k != "history"}


def tune_reporter(metrics: dict, checkpoint_dir: str | None) -> None:
    import ray.tune

    checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    ray.tune.report(scalars(metrics), checkpoint=checkpoint)


def keeping(record, report, replayed: int = 0):
    """``report``, keeping the network's record
    (:class:`raysearch.search.finished_networks.Record`, or None) first: at the last epoch the
    final metrics, before every other the reports so far (a partial record). Tune may stop a
    trial at any report (ASHA does, and always at max_t), and
    then nothing after the call runs. Only rank 0 reports validation and test metrics.
    Epochs 1..``replayed`` were reported already (a twin's reports): they are neither reported
    nor kept again."""
    if record is None and not replayed:
        return report
    reports: list[dict] = []

    def report_and_keep(metrics: dict, checkpoint_dir: str | None) -> None:
        if record is not None and "test_acc" in metrics:
            record.keep(metrics)
        elif record is not None and "val_acc" in metrics:
            reports.append(scalars(metrics))
            # epochs 1..n (not a run resumed mid-way), and more than the twin's record has
            if reports[0]["epoch"] == 1 and metrics["epoch"] > replayed:
                record.keep_partial(reports)
        # a last report always goes out (a GPU's float noise may end a replayed run earlier)
        if metrics["epoch"] > replayed or "test_acc" in metrics:
            report(metrics, checkpoint_dir)

    return report_and_keep


def train_reporter(metrics: dict, checkpoint_dir: str | None) -> None:
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    ray.train.report(scalars(metrics), checkpoint=checkpoint)


def _local_copy(checkpoint) -> str | None:
    """A local folder holding ``checkpoint`` if it can resume a run, else None."""
    import os

    from raysearch.training.loop import RESUME_FILE

    if checkpoint is None:
        return None
    folder = checkpoint.to_directory()  # downloads from remote storage when needed
    return folder if os.path.exists(os.path.join(folder, RESUME_FILE)) else None


def _resume_dir() -> str | None:
    """The checkpoint Tune restored this trial with (a retry or a resumed search), if any."""
    import ray.tune

    return _local_copy(ray.tune.get_checkpoint())


def train_in_process(
    model_config: ModelConfig,
    config: TrainConfig,
    splits: dict,
    spectrogram: dict,
    report=tune_reporter,
    started_at: float = 0.0,
) -> dict:
    """The loop in this process (a Tune trial's actor): device from what Ray assigned.
    ``started_at``: when the trial began (:func:`run_started_at`), for its start-up time."""
    import ray

    device, note = pick_device(bool(config.use_gpu))
    gpu_ids = ray.get_gpu_ids()
    placement = Placement(
        device=device,
        node_id=ray.get_runtime_context().get_node_id(),
        gpus_assigned=len(gpu_ids),
        device_note=f"{note} (Ray GPU ids {gpu_ids})" if note else "",
        started_at=started_at,
    )
    final = fit(
        model_config, config, splits, report, placement, spectrogram, resume_from=_resume_dir()
    )
    return final


def train_worker(loop_config: dict) -> dict | None:
    """Ray Train worker function: ``fit`` on this rank, reporting through Ray Train."""
    import ray
    import ray.train
    import ray.train.torch

    config = TrainConfig(**loop_config["train"])
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    splits = ray.get(loop_config["splits"])
    placement = Placement(
        device=device,
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        node_id=ray.get_runtime_context().get_node_id(),
        gpus_assigned=len(ray.get_gpu_ids()),
        started_at=run_started_at(),
    )
    checkpoint = ray.train.get_checkpoint()
    final = fit(
        ModelConfig.from_dict(loop_config["model"]),
        config,
        splits,
        keeping(loop_config.get("record"), train_reporter),
        placement,
        loop_config.get("spectrogram", {}),
        resume_from=_local_copy(checkpoint),
    )
    return final or None


def build_trainer(
    model_config: ModelConfig,
    config: TrainConfig,
    splits_ref,
    spectrogram: dict,
    *,
    name: str,
    storage_path: str,
    callbacks: list | None = None,
    record=None,
):
    """A ``TorchTrainer`` running :func:`train_worker` on ``config.workers`` ranks.

    ``config.use_gpu`` must be decided (True / False) by the caller; ``splits_ref`` is the
    object-store reference of the splits dict (``ray.put(load_splits(shards))``); ``record``
    (a :class:`raysearch.search.finished_networks.Record`) is where rank 0 keeps a search
    trial's network.
    """
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raysearch.runtime import set_environment

    set_environment()  # e.g. how long a worker group may wait for a GPU node (in this process)
    use_gpu = bool(config.use_gpu)
    resources = {"CPU": config.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = config.gpus_per_worker
    return TorchTrainer(
        train_worker,
        train_loop_config={
            "train": config.to_dict(),
            "model": model_config.to_dict(),
            "spectrogram": spectrogram,
            "splits": splits_ref,
            "record": record,
        },
        scaling_config=ScalingConfig(
            num_workers=config.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_acc", checkpoint_score_order="max"
            ),
            callbacks=callbacks or [],
        ),
    )


def run(shards: str, model_config: ModelConfig, config: TrainConfig, out: str) -> dict:
    """Train one configuration with Ray Train on the running cluster; write its run folder."""
    import time

    import ray

    from raysearch.data.pipeline import shard_meta
    from raysearch.search.gpu_demand import resolve_use_gpu
    from raysearch.storage import is_uri
    from raysearch.training.data import load_splits, spectrogram_settings
    from raysearch.training.run_folder import write_run_folder

    started = time.time()
    out = os.path.abspath(out)
    data = shard_meta(shards, warn=lambda line: print(line, flush=True))
    del data["shards"]  # the run folder's summary names them already
    use_gpu = resolve_use_gpu(config.use_gpu, what="--gpu")
    config = TrainConfig(**{**config.to_dict(), "use_gpu": use_gpu})
    splits_ref = ray.put(load_splits(shards))
    trainer = build_trainer(
        model_config,
        config,
        splits_ref,
        spectrogram_settings(shards),
        name="train",
        storage_path=os.path.join(out, "ray"),
    )
    result = trainer.fit()
    final = {**dict(result.return_value or result.metrics or {}), **data}
    best = result.get_best_checkpoint("val_acc", "max") if result.best_checkpoints else None
    checkpoint_dir = best.path if best is not None and not is_uri(best.path) else None
    write_run_folder(
        out, final, checkpoint_dir, model_config, config, shards, time.time() - started
    )
    return final
