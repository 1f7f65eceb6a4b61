"""The training loop of one configuration: the same code on a CPU, a GPU, in a Tune trial's
process or on every rank of a Ray Train DDP group. Ray-free: where the loop runs and how it
reports are the caller's (:mod:`raysearch.training.runner`).

Per epoch: shuffled batches drawn on the device (:class:`DeviceBatches`), Adam and
cross-entropy, bf16 autocast and channels_last on CUDA; the loss sum and correct count
accumulate on the device and are read once, at the end of the epoch. Rank 0 then evaluates the
validation split, keeps the best-by-validation-accuracy weights (and writes them as a
checkpoint), stops early on validation loss (``patience``), and reports. After the last epoch
it evaluates the test split with the best weights.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from raysearch.model import SECNN, ModelConfig, count_parameters
from raysearch.training.checkpoint import save_checkpoint
from raysearch.training.config import TrainConfig
from raysearch.training.data import SplitArrays
from raysearch.training.evaluate import EvalSplit, autocast, evaluate, model_input
from raysearch.training.feeds import DeviceBatches

# report(metrics, checkpoint_dir): one call per epoch; checkpoint_dir (a folder holding
# model.pt, or None) may be moved or deleted by the reporter once the call returns
Reporter = Callable[[dict, str | None], None]


@dataclass(frozen=True)
class Placement:
    """Where the loop runs: its device, its DDP rank and world size, its Ray node."""

    device: torch.device
    rank: int = 0
    world: int = 1
    node_id: str = ""  # shows how trials spread over a cluster
    gpus_assigned: int = 0  # GPUs Ray assigned to this process (a fraction counts as one)
    device_note: str = ""  # e.g. "GPU requested, CUDA unavailable on this node"


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def fit(
    model_config: ModelConfig,
    config: TrainConfig,
    splits: dict[str, SplitArrays],
    report: Reporter,
    placement: Placement,
    spectrogram: dict | None = None,
) -> dict:
    """Train one configuration; returns rank 0's final metrics (with ``history``), or ``{}``
    on the other ranks."""
    device, rank, world = placement.device, placement.rank, placement.world
    started = time.time()
    seed_everything(config.seed)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(config.threads())

    model = SECNN(model_config).to(device)
    bare = model  # the module whose state_dict is saved (DDP and compile wrap it)
    n_params = count_parameters(model)
    channels_last = on_gpu and config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if on_gpu else None
        )
    if config.compile != "off":
        model = torch.compile(model, mode=config.compile)
    optimizer = torch.optim.Adam(
        bare.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=on_gpu or None
    )
    train = DeviceBatches(
        splits["train"],
        config.batch_size,
        config.seed,
        device,
        rank=rank,
        world=world,
        limit=config.max_train_segments,
        drop_last=config.compile != "off",
    )
    eval_batch = config.eval_batch_size or 256
    val = EvalSplit(splits["val"], device) if rank == 0 else None

    history: list[dict] = []
    best = {"val_acc": -1.0, "epoch": 0, "state": None}
    best_loss, since_best_loss = math.inf, 0
    first_batch_loss = None
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for x, y in train.epoch(epoch):
            loss, logits = train_step(model, optimizer, x, y, config.amp, channels_last)
            if first_batch_loss is None:
                first_batch_loss = loss.clone()
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
        sums = torch.stack([loss_sum.double(), correct.double()])
        if world > 1:
            torch.distributed.all_reduce(sums)
        loss_total, correct_total = sums.tolist()  # the epoch's one device → host read
        count = len(train) * world
        train_seconds = time.time() - epoch_start
        metrics = {
            "epoch": epoch,
            "train_loss": loss_total / max(count, 1),
            "train_acc": correct_total / max(count, 1),
            "train_segments": count,
            "segments_per_s": count / max(train_seconds, 1e-9),
            "first_batch_loss": float(first_batch_loss),
            "node_id": placement.node_id,
            "device": device_name(device),
            "gpus_assigned": placement.gpus_assigned,
        }
        stop = torch.zeros(1, device=device)
        checkpoint_dir = None
        if rank == 0:
            result = evaluate(bare, val, eval_batch, config.amp, channels_last)
            metrics.update(
                val_loss=result["loss"],
                val_acc=result["segment_acc"],
                val_track_acc=result["track_acc"],
            )
            if result["segment_acc"] > best["val_acc"]:
                state = {k: v.detach().clone() for k, v in bare.state_dict().items()}
                best.update(val_acc=result["segment_acc"], epoch=epoch, state=state)
                checkpoint_dir = save_checkpoint(
                    state, model_config, config.to_dict(), spectrogram or {}, epoch, metrics
                )
            if result["loss"] < best_loss - 1e-6:
                best_loss, since_best_loss = result["loss"], 0
            else:
                since_best_loss += 1
            if config.patience and since_best_loss >= config.patience:
                stop[0] = 1
            metrics.update(best_val_acc=best["val_acc"], best_epoch=best["epoch"])
        if world > 1:
            torch.distributed.broadcast(stop, src=0)
        stopped = bool(stop[0])
        metrics["epoch_s"] = time.time() - epoch_start
        history.append(dict(metrics))
        last = stopped or epoch == config.epochs
        if last and rank == 0:
            bare.load_state_dict(best["state"])
            test_split = EvalSplit(splits["test"], device)
            test = evaluate(bare, test_split, eval_batch, config.amp, channels_last)
            metrics.update(
                test_loss=test["loss"],
                test_acc=test["segment_acc"],
                test_track_acc=test["track_acc"],
                test_tracks=test["tracks"],
                test_per_genre_acc=test["per_class_acc"],
                test_confusion=test["confusion"],
                epochs_run=len(history),
                stopped_early=stopped,
                n_params=n_params,
                train_wall_s=time.time() - started,
            )
        if rank == 0:
            if placement.device_note and epoch == 1:
                print(f"note: {placement.device_note}", flush=True)
            print(progress_line(metrics, config.epochs), flush=True)
        report(metrics, checkpoint_dir)
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if last:
            return {**metrics, "history": history} if rank == 0 else {}
    return {}


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: bool,
    channels_last: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch ``x`` (B, F, T), ``y`` (B,); returns the detached loss
    and logits, still on the device (reading them would sync the host)."""
    with autocast(x.device, amp):
        logits = model(model_input(x, channels_last)).float()
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def progress_line(metrics: dict, epochs: int) -> str:
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
