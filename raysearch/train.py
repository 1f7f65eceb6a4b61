"""Train one SE-CNN configuration with Ray Train: the unit of work of every search trial.

``TorchTrainer`` workers read the train split as a Ray Data dataset (split across workers,
shuffled every epoch) and train with Adam (lr 1e-3) and cross-entropy, DDP across workers.
Rank 0 evaluates the validation split every epoch and, at the end, the test split with the
best-by-validation weights: segment accuracy, track accuracy (mean of the 19 segment
probabilities of a track, then argmax), per-genre accuracy and the confusion matrix.

Two ways to feed the workers (``feed``):

* ``stream``: ``iter_batches`` over the dataset shard every epoch with a local shuffle buffer.
  Memory stays flat; fine where the model, not the data, is the bottleneck (CPU training).
* ``memory``: each worker reads its shard once, keeps it as one float16 tensor (on the GPU when
  there is one) and shuffles indices every epoch. Ray Data measured 2,000-4,100 rows/s with
  per-epoch shuffles on this kind of machine, below what an H100 trains at; this mode removes
  that ceiling. ``auto`` picks ``memory``: it also never competes with training for CPUs
  after the first read, which matters on small CPU nodes.

``python -m raysearch.train --shards SHARDS`` writes a run folder: ``metrics.csv`` (one row per
epoch), ``summary.json``, ``checkpoint/model.pt`` (loadable without Ray: see
:func:`load_checkpoint`) and plots in the style of report figures 5.1 / 5.2 and a confusion
matrix.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from raysearch.data import GENRES
from raysearch.data.discover import DataError
from raysearch.data.pipeline import read_manifest, split_path
from raysearch.metrics import classification_report
from raysearch.model import ModelConfig, ModelConfigError
from raysearch.storage import normalize, write_text_atomic

CHECKPOINT_FILE = "model.pt"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # per worker
    lr: float = 1e-3  # Adam, report §5.1
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a lower validation loss before stopping; 0 = never
    seed: int = 0
    workers: int = 1  # Ray Train workers (DDP)
    use_gpu: bool | None = None  # None: use GPUs when the cluster has them
    cpus_per_worker: float = 1.0  # CPUs each worker reserves in Ray
    torch_threads: int = 0  # CPU threads per worker; 0 = as many as the CPUs it reserves
    gpus_per_worker: float = 1.0  # fractions let several one-worker trials share a GPU
    feed: str = "auto"  # auto (= memory) | stream | memory
    shuffle_buffer: int = 512  # rows, for feed="stream"
    max_train_segments: int = 0  # 0 = all; >0 subsamples the train split (smoke tests)

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "patience": self.patience >= 0,
            "workers": self.workers >= 1,
            "cpus_per_worker": self.cpus_per_worker > 0,
            "torch_threads": self.torch_threads >= 0,
            "gpus_per_worker": self.gpus_per_worker > 0,
            "feed": self.feed in ("auto", "stream", "memory"),
            "shuffle_buffer": self.shuffle_buffer >= 0,
            "max_train_segments": self.max_train_segments >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training setting {bad[0]}={getattr(self, bad[0])!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- worker side


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _read_all(iterator, columns: list[str]) -> dict[str, np.ndarray]:
    """Every row of a Ray Data iterator as numpy arrays (one pass)."""
    parts: dict[str, list] = {c: [] for c in columns}
    for batch in iterator.iter_batches(batch_size=1024, batch_format="numpy", prefetch_batches=2):
        for c in columns:
            parts[c].append(batch[c])
    return {c: (np.concatenate(v) if v else np.zeros((0,))) for c, v in parts.items()}


class _EpochFeed:
    """Yields shuffled (spectrogram, label) batches of the worker's train shard each epoch."""

    def __init__(self, shard, config: TrainConfig, mode: str, device) -> None:
        import torch

        self.shard, self.config, self.mode, self.device = shard, config, mode, device
        self.limit = config.max_train_segments
        if mode == "memory":
            rows = _read_all(shard, ["spectrogram", "label"])
            x, y = rows["spectrogram"], rows["label"]
            if self.limit:
                keep = np.random.default_rng(config.seed).permutation(len(y))[: self.limit]
                x, y = x[keep], y[keep]
            target = device if device.type == "cuda" else "cpu"
            self.x = torch.from_numpy(np.ascontiguousarray(x)).to(target)
            self.y = torch.from_numpy(y.astype(np.int64)).to(target)

    def batches(self, epoch: int):
        import torch

        bs = self.config.batch_size
        if self.mode == "memory":
            generator = torch.Generator(device="cpu").manual_seed(self.config.seed * 1000 + epoch)
            order = torch.randperm(len(self.y), generator=generator).to(self.x.device)
            for start in range(0, len(order), bs):
                index = order[start : start + bs]
                yield self.x[index], self.y[index]
            return
        seen = 0
        pin = self.device.type == "cuda"
        for batch in self.shard.iter_batches(
            batch_size=bs,
            batch_format="numpy",
            prefetch_batches=2,
            local_shuffle_buffer_size=self.config.shuffle_buffer or None,
            local_shuffle_seed=self.config.seed * 1000 + epoch,
        ):
            x = torch.from_numpy(batch["spectrogram"])
            y = torch.from_numpy(batch["label"].astype(np.int64))
            if self.limit:
                take = min(len(y), self.limit - seen)
                x, y = x[:take], y[:take]
                seen += take
            if pin:
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y
            if self.limit and seen >= self.limit:
                return


def _forward(model, x, device, amp: bool):
    import torch

    x = x.to(device, non_blocking=True).unsqueeze(1)  # (B, F, T) → (B, 1, F, T)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return model(x).float()
    return model(x)


def _evaluate(model, rows: dict[str, np.ndarray], device, batch_size: int, amp: bool) -> dict:
    """Loss, segment probabilities and labels over cached evaluation rows."""
    import torch
    import torch.nn.functional as F

    model.eval()
    probs, total_loss = [], 0.0
    x_all, y_all = rows["spectrogram"], rows["label"].astype(np.int64)
    with torch.no_grad():
        for start in range(0, len(y_all), batch_size * 2):
            x = torch.from_numpy(x_all[start : start + batch_size * 2])
            y = torch.from_numpy(y_all[start : start + batch_size * 2]).to(device)
            logits = _forward(model, x, device, amp)
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    model.train()
    n = max(1, len(y_all))
    probs_all = np.concatenate(probs) if probs else np.zeros((0, len(GENRES)))
    report = classification_report(probs_all, y_all, rows["track_id"], list(GENRES))
    return {"loss": total_loss / n, **report}


def train_loop_per_worker(loop_config: dict) -> dict | None:
    """Ray Train worker: the training loop of one configuration."""
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    config = TrainConfig(**loop_config["train"])
    model_config = ModelConfig.from_dict(loop_config["model"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    _seed_everything(config.seed)
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    mode = "memory" if config.feed == "auto" else config.feed
    if not on_gpu:
        torch.set_num_threads(config.torch_threads or max(1, int(config.cpus_per_worker)))
    started = time.time()
    node_id = ray.get_runtime_context().get_node_id()

    from raysearch.model import SECNN, count_parameters

    model = SECNN(model_config)
    n_params = count_parameters(model)
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    bare = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    feed = _EpochFeed(ray.train.get_dataset_shard("train"), config, mode, device)
    eval_columns = ["spectrogram", "label", "track_id"]
    val_rows = _read_all(ray.train.get_dataset_shard("val"), eval_columns) if rank == 0 else None

    history: list[dict] = []
    best = {"val_acc": -1.0, "epoch": 0, "state": None}
    best_loss, since_best_loss = math.inf, 0
    first_batch_loss = None
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        model.train()
        sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        for x, y in feed.batches(epoch):
            y = y.to(device, non_blocking=True)
            logits = _forward(model, x, device, amp=True)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if first_batch_loss is None:
                first_batch_loss = float(loss.detach())
            sums += torch.tensor(
                [float(loss.detach()) * len(y), float((logits.argmax(1) == y).sum()), len(y)],
                dtype=torch.float64,
            )
        if world > 1:
            dist.all_reduce(sums)
        train_seconds = time.time() - epoch_start
        loss_sum, correct, count = sums.tolist()
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(count, 1),
            "train_acc": correct / max(count, 1),
            "train_segments": int(count),
            "segments_per_s": count / max(train_seconds, 1e-9),
            "first_batch_loss": first_batch_loss,
            "node_id": node_id,  # where rank 0 ran: shows how trials spread over a cluster
        }
        checkpoint = None
        stop = torch.zeros(1)
        if rank == 0:
            val = _evaluate(bare, val_rows, device, config.batch_size, amp=True)
            metrics.update(
                val_loss=val["loss"], val_acc=val["segment_acc"], val_track_acc=val["track_acc"]
            )
            if val["segment_acc"] > best["val_acc"]:
                best.update(
                    val_acc=val["segment_acc"],
                    epoch=epoch,
                    state={k: v.detach().cpu().clone() for k, v in bare.state_dict().items()},
                )
                checkpoint = _save_checkpoint(
                    bare, model_config, config, metrics, loop_config.get("spectrogram", {})
                )
            if val["loss"] < best_loss - 1e-6:
                best_loss, since_best_loss = val["loss"], 0
            else:
                since_best_loss += 1
            if config.patience and since_best_loss >= config.patience:
                stop[0] = 1
            metrics.update(best_val_acc=best["val_acc"], best_epoch=best["epoch"])
        if world > 1:
            dist.broadcast(stop, src=0)
        metrics["epoch_s"] = time.time() - epoch_start
        history.append(dict(metrics))
        last = bool(stop[0]) or epoch == config.epochs
        if last and rank == 0:
            metrics.update(
                _final_metrics(
                    bare,
                    best,
                    device,
                    config,
                    n_params,
                    history,
                    stopped_early=bool(stop[0]),
                    started=started,
                )
            )
        if rank == 0:
            print(_progress_line(metrics, config.epochs), flush=True)
        # the epoch history goes back as the return value only: Tune's loggers take scalars
        ray.train.report(
            {k: v for k, v in metrics.items() if k != "history"}, checkpoint=checkpoint
        )
        if checkpoint is not None:
            shutil.rmtree(checkpoint.path, ignore_errors=True)
        if last:
            return metrics if rank == 0 else None
    return None


def _progress_line(metrics: dict, epochs: int) -> str:
    line = (
        f"epoch {metrics['epoch']}/{epochs}: train loss {metrics['train_loss']:.3f} "
        f"acc {metrics['train_acc']:.3f} | val loss {metrics.get('val_loss', float('nan')):.3f} "
        f"acc {metrics.get('val_acc', float('nan')):.3f} | "
        f"{metrics['segments_per_s']:.1f} segments/s"
    )
    if "test_acc" in metrics:
        line += (
            f" | test (best epoch {metrics['best_epoch']}) segment acc "
            f"{metrics['test_acc']:.3f} track acc {metrics['test_track_acc']:.3f}"
        )
    return line


def _final_metrics(
    model,
    best: dict,
    device,
    config: TrainConfig,
    n_params: int,
    history: list[dict],
    stopped_early: bool,
    started: float,
) -> dict:
    """Test metrics of the best-by-validation weights, and the run's summary numbers."""
    import ray.train

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test_rows = _read_all(ray.train.get_dataset_shard("test"), ["spectrogram", "label", "track_id"])
    test = _evaluate(model, test_rows, device, config.batch_size, amp=True)
    return {
        "test_loss": test["loss"],
        "test_acc": test["segment_acc"],
        "test_track_acc": test["track_acc"],
        "test_tracks": test["tracks"],
        "test_per_genre_acc": test["per_class_acc"],
        "test_confusion": test["confusion"],
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "n_params": n_params,
        "train_wall_s": time.time() - started,
        "history": history,
    }


def _save_checkpoint(
    model, model_config: ModelConfig, config: TrainConfig, metrics: dict, spectrogram: dict
):
    import ray.train
    import torch

    folder = tempfile.mkdtemp(prefix="raysearch-ckpt-")
    torch.save(
        {
            "format": "raysearch-secnn/1",
            "model_config": model_config.to_dict(),
            "train_config": config.to_dict(),
            "labels": list(GENRES),
            "spectrogram": spectrogram,  # the shards' settings: prediction must use the same
            "epoch": metrics["epoch"],
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        os.path.join(folder, CHECKPOINT_FILE),
    )
    return ray.train.Checkpoint.from_directory(folder)


# ----------------------------------------------------------------------------- driver side


def load_checkpoint(path: str):
    """(model in eval mode, payload) from a checkpoint folder or ``model.pt``, without Ray."""
    import torch

    from raysearch.model import SECNN

    file = os.path.join(path, CHECKPOINT_FILE) if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"{path}: no {CHECKPOINT_FILE} checkpoint here")
    payload = torch.load(file, map_location="cpu", weights_only=True)
    model = SECNN(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def model_config_for(shards: str, **overrides) -> ModelConfig:
    """A model config sized for the shards (input shape, classes, input standardisation)."""
    manifest = read_manifest(shards)
    stats = manifest.get("train_stats", {})
    return ModelConfig(
        input_shape=tuple(manifest["shape"]),
        n_classes=len(manifest["labels"]),
        input_mean=float(stats.get("mean", 0.0)),
        input_std=float(stats.get("std", 1.0)) or 1.0,
        **overrides,
    )


def split_datasets(shards: str, rows_per_block: int = 256) -> dict:
    """The train / val / test splits of a shard folder as materialized Ray Data datasets.

    The driver reads the Parquet files once (pyarrow, through the shards' filesystem, so
    ``s3://`` works) and hands the tables to ``ray.data.from_arrow``: the blocks live in the
    driver node's object store and every trial of a search shares them. Two facts of Ray 2.60
    make this better than ``read_parquet`` inside each trial: its file-listing task needs a
    free CPU, which never comes once trials hold every CPU of a small node; and blocks made by
    read tasks on a worker node are lost with that node, and rebuilding them needs a free CPU
    again. Objects put by the driver stay wherever the driver runs.
    """
    import pyarrow.parquet as pq
    import ray.data

    from raysearch.storage import resolve

    manifest = read_manifest(shards)
    # The workers consume these datasets; per-operator progress bars from inside them only
    # clutter the logs (the trainer prints one line per epoch instead).
    ray.data.DataContext.get_current().enable_progress_bars = False
    datasets = {}
    for split in ("train", "val", "test"):
        if manifest["counts"]["segments"].get(split, 0) == 0:
            raise DataError(
                f"{shards}: the {split} split is empty "
                f"({manifest['counts']['tracks']}); prepare more tracks"
            )
        filesystem, path = resolve(split_path(shards, split))
        table = pq.read_table(
            path, filesystem=filesystem, columns=["track_id", "label", "spectrogram"]
        )
        blocks = [
            table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)
        ]
        datasets[split] = ray.data.from_arrow(blocks)
    return datasets


def _spectrogram_settings(shards: str) -> dict:
    """The SpectrogramConfig fields of the shards' manifest."""
    from dataclasses import fields

    from raysearch.data.spectrogram import SpectrogramConfig

    recorded = read_manifest(shards).get("spectrogram", {})
    return {f.name: recorded[f.name] for f in fields(SpectrogramConfig) if f.name in recorded}


def cluster_has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def build_trainer(
    shards: str,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    name: str,
    storage_path: str,
    callbacks: list | None = None,
    datasets: dict | None = None,
):
    """A ``TorchTrainer`` for one configuration (used by the CLI and by every Tune trial).

    ``datasets`` (from :func:`split_datasets`) lets many trainers share one read of the shards.
    """
    from ray.train import CheckpointConfig, DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_gpu = cluster_has_gpus() if config.use_gpu is None else config.use_gpu
    resources = {"CPU": config.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = config.gpus_per_worker
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "train": replace(config, use_gpu=use_gpu).to_dict(),
            "model": model_config.to_dict(),
            "spectrogram": _spectrogram_settings(shards),
        },
        scaling_config=ScalingConfig(
            num_workers=config.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        datasets=datasets or split_datasets(shards),
        dataset_config=DataConfig(datasets_to_split=["train"]),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_acc", checkpoint_score_order="max"
            ),
            callbacks=callbacks or [],
        ),
    )


def final_metrics(result) -> dict:
    """The last report of a run (rank 0's return value: the one with the test metrics)."""
    return dict(result.return_value or result.metrics or {})


def write_run_folder(
    out: str,
    final: dict,
    checkpoint_dir: str | None,
    model_config: ModelConfig,
    config: TrainConfig,
    shards: str,
    wall_s: float,
) -> None:
    """metrics.csv, summary.json, checkpoint/ and the plots of one run."""
    from raysearch import plots

    os.makedirs(out, exist_ok=True)
    history = final.get("history", [])
    columns = [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_track_acc",
        "segments_per_s",
        "epoch_s",
    ]
    with open(os.path.join(out, ".metrics.csv.tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(os.path.join(out, ".metrics.csv.tmp"), os.path.join(out, "metrics.csv"))
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
            title=f"test tracks, accuracy {final.get('test_track_acc', 0):.3f}",
        )


def run(shards: str, model_config: ModelConfig, config: TrainConfig, out: str) -> dict:
    """Train one configuration on the running Ray cluster and write its run folder."""
    from raysearch.storage import is_uri

    started = time.time()
    out = os.path.abspath(out)
    storage = os.path.join(out, "ray")
    trainer = build_trainer(shards, model_config, config, name="train", storage_path=storage)
    result = trainer.fit()
    final = final_metrics(result)
    best = result.get_best_checkpoint("val_acc", "max") if result.best_checkpoints else None
    checkpoint_dir = best.path if best is not None and not is_uri(best.path) else None
    write_run_folder(
        out, final, checkpoint_dir, model_config, config, shards, time.time() - started
    )
    return final


def parse_int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    from raysearch.prepare import build_parser as prepare_parser

    parser = argparse.ArgumentParser(
        prog="python -m raysearch.train",
        description="Train one SE-CNN configuration with Ray Train and write a run folder "
        "(metrics.csv, summary.json, checkpoint/, accuracy.png, loss.png, confusion.png).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch.prepare (path or URI); default: "
        "prepare / reuse the synthetic mini-GTZAN",
    )
    parser.add_argument("--out", default="runs/train", help="run folder to write")
    model = parser.add_argument_group("model (report table 4.1)")
    model.add_argument(
        "--channels", type=parse_int_list, default=ModelConfig.channels, help="the five conv widths"
    )
    model.add_argument("--ratio", type=float, default=ModelConfig.ratio, help="SE ratio r")
    model.add_argument(
        "--se-blocks",
        type=parse_int_list,
        default=ModelConfig.se_blocks,
        help="blocks (1-5) carrying an SE block; '' for none",
    )
    model.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="per worker")
    train.add_argument("--lr", type=float, default=TrainConfig.lr)
    train.add_argument(
        "--patience",
        type=int,
        default=TrainConfig.patience,
        help="early stopping on validation loss; 0 = off",
    )
    train.add_argument("--seed", type=int, default=TrainConfig.seed)
    train.add_argument(
        "--workers", type=int, default=TrainConfig.workers, help="Ray Train workers (DDP)"
    )
    device = train.add_mutually_exclusive_group()
    device.add_argument(
        "--gpu",
        dest="use_gpu",
        action="store_true",
        default=None,
        help="train on GPUs (default: when the cluster has them)",
    )
    device.add_argument("--cpu", dest="use_gpu", action="store_false", help="train on CPUs")
    train.add_argument(
        "--cpus-per-worker",
        type=float,
        default=TrainConfig.cpus_per_worker,
        help="CPUs each worker reserves (the rest stay free for Ray Data)",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per worker; default: this machine's cores shared among the workers",
    )
    train.add_argument(
        "--feed",
        choices=["auto", "stream", "memory"],
        default="auto",
        help="stream the shard each epoch, or hold it in memory",
    )
    train.add_argument(
        "--max-train-segments",
        type=int,
        default=0,
        help="train on at most this many segments per epoch (0 = all)",
    )
    # the synthetic / Ray options of raysearch.prepare, for the default shards
    for action in prepare_parser()._actions:
        if action.dest in ("address", "num_cpus"):
            parser._add_action(action)
    return parser


def main(argv: list[str] | None = None) -> int:
    from raysearch.runtime import init_ray

    args = build_parser().parse_args(argv)
    try:
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            workers=args.workers,
            use_gpu=args.use_gpu,
            cpus_per_worker=args.cpus_per_worker,
            torch_threads=args.threads
            if args.threads is not None
            else max(1, (os.cpu_count() or 1) // args.workers),
            feed=args.feed,
            max_train_segments=args.max_train_segments,
        )
        init_ray(args.address, args.num_cpus)
        shards = normalize(args.shards) if args.shards else default_shards()
        model_config = model_config_for(
            shards,
            channels=args.channels,
            ratio=args.ratio,
            se_blocks=args.se_blocks,
            dropout=args.dropout,
        )
    except (DataError, ModelConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = run(shards, model_config, config, args.out)
    print(f"run folder: {os.path.abspath(args.out)}")
    print(
        f"epochs {final.get('epochs_run')}, best val acc {final.get('best_val_acc', 0):.3f} "
        f"(epoch {final.get('best_epoch')}), test segment acc {final.get('test_acc', 0):.3f}, "
        f"test track acc {final.get('test_track_acc', 0):.3f}, "
        f"{final.get('n_params')} parameters"
    )
    return 0


def default_shards() -> str:
    """Prepare (or reuse) the synthetic default's shards; returns their folder."""
    from raysearch.prepare import build_parser as prepare_parser
    from raysearch.prepare import ensure_shards

    return ensure_shards(prepare_parser().parse_args([])).out


if __name__ == "__main__":
    sys.exit(main())
