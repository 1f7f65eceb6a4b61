"""The training loop of one configuration: the same code on a CPU, a GPU, in a Tune trial's
process or on every rank of a Ray Train DDP group. Ray-free: where the loop runs and how it
reports are the caller's (:mod:`raysearch.training.runner`).

Per epoch: shuffled batches drawn on the device (:class:`DeviceBatches`), Adam and
cross-entropy, bf16 autocast and channels_last on CUDA; the loss sum and correct count
accumulate on the device and are read once, at the end of the epoch. Rank 0 then evaluates the
validation split, keeps the best-by-validation-accuracy weights (and writes them as a
checkpoint), stops early on validation loss (``patience``), and reports. After the last epoch
it evaluates the test split with the best weights, and the last checkpoint keeps those weights'
validation and test probabilities (``predictions.npz``, :mod:`raysearch.training.predictions`):
only a run that completes writes them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from raysearch.data import GENRES
from raysearch.model import SECNN, ModelConfig, SEBlock, count_macs, count_parameters
from raysearch.training.augment import Augmenter, mixup_loss
from raysearch.training.checkpoint import CHECKPOINT_FILE, save_checkpoint
from raysearch.training.config import TrainConfig
from raysearch.training.data import SplitArrays
from raysearch.training.evaluate import EvalSplit, autocast, evaluate, model_input
from raysearch.training.feeds import DeviceBatches
from raysearch.training.gpu_memory import gpu_out_of_memory, trials_sharing
from raysearch.training.predictions import SplitPredictions, save_predictions

# report(metrics, checkpoint_dir): one call per epoch; checkpoint_dir (a folder holding
# model.pt, or None) may be moved or deleted by the reporter once the call returns
Reporter = Callable[[dict, str | None], None]
RESUME_FILE = "resume.pt"


@dataclass(frozen=True)
class Placement:
    """Where the loop runs: its device, its DDP rank and world size, its Ray node."""

    device: torch.device
    rank: int = 0
    world: int = 1
    node_id: str = ""  # shows how trials spread over a cluster
    gpus_assigned: int = 0  # GPUs Ray assigned to this process (a fraction counts as one)
    device_note: str = ""  # e.g. "GPU requested, CUDA unavailable on this node"
    # when this run's work began (time.time()): its process's start, or when a reused process
    # was handed the run; 0 = when fit was called. The first step's end minus this is the
    # run's start-up (``startup_s``: imports, CUDA context, data to the device, compile)
    started_at: float = 0.0


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


@dataclass
class Progress:
    """Where a run stands after an epoch: everything a resumed run needs besides the weights."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = 0
    best_state: dict | None = None  # best-by-validation-accuracy weights
    # their validation probabilities (N, K) float16, kept when they were evaluated: the
    # completed run's predictions.npz needs no second validation pass
    best_val_probs: np.ndarray | None = None
    best_loss: float = math.inf  # lowest validation loss, for early stopping
    since_best_loss: int = 0
    first_batch_loss: float | None = None


def save_resume_state(folder: str, model, optimizer, progress: Progress, augment_rng) -> None:
    """``resume.pt`` beside ``model.pt``: the last epoch's weights, optimizer, progress and
    random generators' states."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "progress": {k: v for k, v in vars(progress).items() if k != "best_state"},
        "torch_rng": torch.get_rng_state(),
        "augment_rng": augment_rng.get_state(),
    }
    torch.save(state, os.path.join(folder, RESUME_FILE))


def load_resume_state(folder: str, model, optimizer, device, augment_rng) -> Progress:
    """The run saved in ``folder`` (a checkpoint of this loop), loaded into model, optimizer
    and generators."""
    state = torch.load(os.path.join(folder, RESUME_FILE), map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _fit_state_to_parameters(optimizer)
    torch.set_rng_state(state["torch_rng"])
    augment_rng.set_state(state["augment_rng"])
    best = torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location=device, weights_only=True)
    return Progress(**state["progress"], best_state=best["state_dict"])


def _fit_state_to_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Adam's moments saved by a run whose SE blocks were padded (compiled) and resumed by one
    whose are not, or the other way round: cut or zero-padded to the parameters' shapes (the
    padding's moments are 0)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() == param.dim() > 0:
                    if value.shape == param.shape:
                        continue
                    common = tuple(map(slice, map(min, value.shape, param.shape)))
                    state[key] = torch.zeros_like(param)
                    state[key][common] = value[common]


@dataclass
class _Run:
    """One run of :func:`fit` as it goes: the network (``model`` as it trains, wrapped by DDP
    or compile; ``bare`` the module whose weights are saved), its optimizer and data, and
    where it stands (``progress``)."""

    model_config: ModelConfig
    config: TrainConfig
    placement: Placement
    model: torch.nn.Module
    bare: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train: DeviceBatches
    val: EvalSplit | None  # rank 0 only
    augment: Augmenter
    augment_rng: torch.Generator
    progress: Progress
    channels_last: bool
    n_params: int
    started: float
    startup_s: float | None = None  # from placement.started_at to the end of the first step
    # Inductor's FX-graph cache counters when the run started (compiled runs only): the first
    # step's misses are the graphs this run compiled itself, its hits the ones it loaded
    graph_counters: tuple[int, int] | None = None
    graphs_compiled: int | None = None
    graphs_cached: int | None = None
    graph_keys: GraphCacheKeys | None = None  # the cache keys the first step looked up
    predictions: dict[str, SplitPredictions] | None = None  # val and test, once tested

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def eval_batch(self) -> int:
        return self.config.eval_batch

    def evaluate(self, split: EvalSplit) -> dict:
        return evaluate(self.bare, split, self.eval_batch, self.config.amp, self.channels_last)


def fit(
    model_config: ModelConfig,
    config: TrainConfig,
    splits: dict[str, SplitArrays],
    report: Reporter,
    placement: Placement,
    spectrogram: dict | None = None,
    resume_from: str | None = None,
) -> dict:
    """Train one configuration; returns rank 0's final metrics (with ``history``), or ``{}``
    on the other ranks. ``resume_from``: a checkpoint folder this loop wrote; training goes on
    after its epoch with its weights, optimizer state and early-stopping state. Running out of
    GPU memory raises :class:`~raysearch.training.gpu_memory.GpuOutOfMemory` (one line)."""
    try:
        return _fit(model_config, config, splits, report, placement, spectrogram, resume_from)
    except torch.cuda.OutOfMemoryError:
        raise gpu_out_of_memory(placement.device, config.gpus_per_worker) from None


def _fit(
    model_config: ModelConfig,
    config: TrainConfig,
    splits: dict[str, SplitArrays],
    report: Reporter,
    placement: Placement,
    spectrogram: dict | None,
    resume_from: str | None,
) -> dict:
    run = _start(model_config, config, splits, placement, resume_from)
    rank = placement.rank
    for epoch in range(run.progress.epoch + 1, config.epochs + 1):
        epoch_start = time.time()
        metrics = _train_epoch(run, epoch)
        stopped = _validate(run, metrics) if rank == 0 else False
        if placement.world > 1:
            stopped = _broadcast_stop(stopped, run.device)
        metrics["epoch_s"] = time.time() - epoch_start
        run.progress.epoch = epoch
        run.progress.history.append(dict(metrics))
        last = stopped or epoch == config.epochs
        checkpoint_dir = None
        if rank == 0:
            if last:
                _test(run, splits["test"], metrics, stopped)
            if placement.device_note and epoch == run.progress.history[0]["epoch"]:
                print(f"note: {placement.device_note}", flush=True)
            print(progress_line(metrics, config.epochs), flush=True)
            checkpoint_dir = _save(run, metrics, spectrogram or {}, resumable=not last)
        if last:  # the final metrics, also in the last report (reporters send only scalars):
            # a caller may have to act on them there, as a trial can be stopped at that report
            metrics["history"] = run.progress.history
        report(metrics, checkpoint_dir)
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if last:
            return metrics if rank == 0 else {}
    return {}


def _start(
    model_config: ModelConfig,
    config: TrainConfig,
    splits: dict[str, SplitArrays],
    placement: Placement,
    resume_from: str | None,
) -> _Run:
    """Seeds, the network on its device (channels_last, DDP, compile as asked), Adam, the
    device-resident data, and the progress of a resumed run."""
    device, rank, world = placement.device, placement.rank, placement.world
    started = time.time()
    seed_everything(config.seed)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(config.threads())
    compile_mode = config.compile_mode(on_gpu)
    # a compiled network pads its SE bottlenecks, so that one graph (and the compile cache)
    # serves every ratio r of a channel configuration; an eager one has nothing to gain
    kernels = config.kernels_for(compile_mode)
    model = SECNN(model_config, kernels, pad_se=compile_mode != "off").to(device)
    bare = model  # the module whose state_dict is saved (DDP and compile wrap it)
    channels_last = on_gpu and config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        bare.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=on_gpu or None
    )
    progress = Progress()
    # masks and mixup draw from their own seeded generator on the device (resumed with the run)
    augment_rng = torch.Generator(device=device).manual_seed(config.seed + 7919 * rank)
    if resume_from:
        progress = load_resume_state(resume_from, bare, optimizer, device, augment_rng)
        if rank == 0:
            print(f"resuming after epoch {progress.epoch} from {resume_from}", flush=True)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if on_gpu else None
        )
    graph_counters, graph_keys = None, None
    if compile_mode != "off":
        # a trial compiles with the CPUs it holds, not one Inductor worker per CPU of the node
        # for each of the K trials that start together (search.warmup compiles the first
        # wave's graph once, with the whole node, before they start)
        set_compile_threads(config.compile_workers())
        graph_counters = fx_graph_cache_counters()
        graph_keys = GraphCacheKeys().attach()
        model = compile_model(model, compile_mode)
    train = DeviceBatches(
        splits["train"],
        config.batch_size,
        config.seed,
        device,
        rank=rank,
        world=world,
        limit=config.max_train_segments,
        drop_last=compile_mode != "off",  # a compiled model would recompile for a short batch
    )
    return _Run(
        model_config=model_config,
        config=config,
        placement=placement,
        model=model,
        bare=bare,
        optimizer=optimizer,
        train=train,
        val=EvalSplit(splits["val"], device) if rank == 0 else None,
        augment=Augmenter(config, model_config.input_mean, device, augment_rng),
        augment_rng=augment_rng,
        progress=progress,
        channels_last=channels_last,
        n_params=count_parameters(bare),
        started=started,
        graph_counters=graph_counters,
        graph_keys=graph_keys,
    )


def _train_epoch(run: _Run, epoch: int) -> dict:
    """One pass over the train split; the epoch's training metrics. The loss sum and the
    correct count stay on the device until the epoch's one read."""
    device, world, config = run.device, run.placement.world, run.config
    epoch_start = time.time()
    run.model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    first_batch_loss = run.progress.first_batch_loss
    for x, y in run.train.epoch(epoch):
        loss, logits = train_step(
            run.model, run.optimizer, x, y, config.amp, run.channels_last, run.augment
        )
        if run.startup_s is None:
            run.startup_s = _first_step_done(run)
        if first_batch_loss is None:
            first_batch_loss = loss.clone()
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
    sums = torch.stack([loss_sum.double(), correct.double()])
    if world > 1:
        torch.distributed.all_reduce(sums)
    loss_total, correct_total = sums.tolist()  # the epoch's one device → host read
    run.progress.first_batch_loss = float(first_batch_loss)
    count = len(run.train) * world
    train_seconds = time.time() - epoch_start
    metrics = {
        "epoch": epoch,
        "train_loss": loss_total / max(count, 1),
        "train_acc": correct_total / max(count, 1),
        "train_segments": count,
        "segments_per_s": count / max(train_seconds, 1e-9),
        "first_batch_loss": run.progress.first_batch_loss,
        "node_id": run.placement.node_id,
        "device": device_name(device),
        "gpus_assigned": run.placement.gpus_assigned,
        "n_params": run.n_params,
        "macs": count_macs(run.model_config),  # multiply-adds per segment
        "startup_s": run.startup_s,
    }
    if run.graphs_compiled is not None:
        metrics["graphs_compiled"] = run.graphs_compiled
        metrics["graphs_cached"] = run.graphs_cached
        metrics["graph_keys"] = " ".join(run.graph_keys.keys) if run.graph_keys else ""
    if device.type == "cuda":  # torch's peak for this process: weights, data, activations
        metrics["gpu_mem_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        # what its allocator held at most (cached blocks too): nearer what the GPU lost to it
        metrics["gpu_mem_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
        metrics["trials_per_gpu"] = trials_sharing(run.config.gpus_per_worker)
    return metrics


def _first_step_done(run: _Run) -> float:
    """Seconds from the run's start (``placement.started_at``) to now, the first step done
    (waited for on a GPU: one synchronisation per run)."""
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    if run.graph_counters is not None:
        misses, hits = fx_graph_cache_counters()
        run.graphs_compiled = misses - run.graph_counters[0]
        run.graphs_cached = hits - run.graph_counters[1]
        if run.graph_keys is not None:
            run.graph_keys.detach()
    return time.time() - (run.placement.started_at or run.started)


def fx_graph_cache_counters() -> tuple[int, int]:
    """(misses, hits) of Inductor's FX-graph cache in this process so far: a miss is a graph
    compiled here, a hit one loaded from the on-disk cache (forward and backward count one
    each)."""
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_miss"], counters["inductor"]["fxgraph_cache_hit"]


class GraphCacheKeys(logging.Handler):
    """The FX-graph cache keys Inductor looks up while attached, from its own INFO lines
    ("fx graph cache hit/miss for key K"), as ``hit:K`` / ``miss:K`` (K cut to 16 characters).
    A trial and the compile warm-up that should have served it can then be compared key by key
    (their result.json and the experiment's runs record them)."""

    PATTERN = re.compile(r"fx graph cache (hit|miss) for key (\S+)")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.keys: list[str] = []
        self._logger = logging.getLogger("torch._inductor.codecache")
        self._saved = (self._logger.level, self._logger.propagate)

    def attach(self) -> GraphCacheKeys:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False  # the INFO lines go here only, not to stderr
        return self

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PATTERN.match(record.getMessage())
        if found:
            self.keys.append(f"{found[1]}:{found[2][:16]}")


def set_compile_threads(threads: int) -> None:
    """Inductor's compile workers for this process (its own default: one per CPU of the
    machine, up to 32). Not part of Inductor's cache key: a graph compiled with any number
    loads in a process with any other."""
    import torch._inductor.config

    torch._inductor.config.compile_threads = max(1, int(threads))


def _validate(run: _Run, metrics: dict) -> bool:
    """Rank 0: validation metrics into ``metrics``, the best-by-validation-accuracy weights
    kept, and whether early stopping on validation loss (``patience``) ends the run."""
    progress = run.progress
    result = run.evaluate(run.val)
    metrics.update(
        val_loss=result["loss"],
        val_acc=result["segment_acc"],
        val_track_acc=result["track_acc"],
    )
    if result["segment_acc"] > progress.best_val_acc:
        progress.best_val_acc, progress.best_epoch = result["segment_acc"], metrics["epoch"]
        progress.best_state = {k: v.detach().clone() for k, v in run.bare.state_dict().items()}
        progress.best_val_probs = result["probs"].astype(np.float16)
    if result["loss"] < progress.best_loss - 1e-6:
        progress.best_loss, progress.since_best_loss = result["loss"], 0
    else:
        progress.since_best_loss += 1
    metrics.update(
        best_val_acc=progress.best_val_acc,
        best_epoch=progress.best_epoch,
        best_val_loss=progress.best_loss,
    )
    return bool(run.config.patience and progress.since_best_loss >= run.config.patience)


def _broadcast_stop(stopped: bool, device: torch.device) -> bool:
    """Rank 0's early-stopping decision, on every rank."""
    stop = torch.tensor([float(stopped)], device=device)
    torch.distributed.broadcast(stop, src=0)
    return bool(stop[0])


def _test(run: _Run, split: SplitArrays, metrics: dict, stopped: bool) -> None:
    """Rank 0, after the last epoch: the test metrics of the best-by-validation weights. The
    train split leaves the device first: the test split takes its memory, so a trial's peak
    is not the sum of all three splits (docs/performance.md, trials per GPU)."""
    run.train.release()
    run.bare.load_state_dict(run.progress.best_state)
    test = run.evaluate(EvalSplit(split, run.device))
    val_probs = run.progress.best_val_probs
    if val_probs is None:  # resumed from a checkpoint written before runs kept them
        val_probs = run.evaluate(run.val)["probs"]
    run.predictions = {
        "val": SplitPredictions.of(val_probs, run.val.labels, run.val.track_id),
        "test": SplitPredictions.of(test["probs"], split.label, split.track_id),
    }
    metrics.update(
        test_loss=test["loss"],
        test_acc=test["segment_acc"],
        test_track_acc=test["track_acc"],
        test_tracks=test["tracks"],
        test_per_genre_acc=test["per_class_acc"],
        test_confusion=test["confusion"],
        epochs_run=len(run.progress.history),
        stopped_early=stopped,
        train_wall_s=time.time() - run.started,
    )


def _save(run: _Run, metrics: dict, spectrogram: dict, resumable: bool) -> str:
    """Rank 0, every epoch: a checkpoint folder with the best weights (``model.pt``, what
    predict loads) and, unless the run ends here, the state to go on from this epoch
    (``resume.pt``), so a retried trial loses at most one epoch; at the end, their
    predictions (``predictions.npz``; ``predictions_s`` in the last report: the time to
    write them)."""
    progress = run.progress
    folder = save_checkpoint(
        progress.best_state,
        run.model_config,
        run.config.to_dict(),
        spectrogram,
        progress.best_epoch,
        metrics,
    )
    if resumable:
        save_resume_state(folder, run.bare, run.optimizer, progress, run.augment_rng)
    elif run.predictions is not None:
        started = time.perf_counter()
        save_predictions(folder, run.predictions, GENRES)
        metrics["predictions_s"] = time.perf_counter() - started
    return folder


def compile_model(
    model: torch.nn.Module, mode: str, backend: str = "inductor", share_se: bool = False
) -> torch.nn.Module:
    """``torch.compile(model)`` after clearing what earlier trials of this process compiled.

    Dynamo keeps compiled code per Python function (``SECNN.forward``), with one entry per
    network shape, and past ``recompile_limit`` (8) entries it runs the function uncompiled
    without an error. A reused Tune actor trains one network after another, so from its ninth
    distinct network on ``--compile`` would silently do nothing. Clearing first compiles every
    trial; a network compiled before comes back from Inductor's on-disk cache.

    ``share_se`` runs the SE blocks' two small layers (the only ones whose width depends on r)
    eagerly, with a graph break at each, so networks that differ only in r compile to the same
    graphs; it costs host time every step (many graphs instead of one), so the loop pads a
    compiled network's SE blocks instead (``SECNN(pad_se=True)``): whole graphs, the same for
    every r. ``benchmarks/compile_reuse.py`` measures the three (docs/performance.md).
    """
    torch._dynamo.reset()
    if share_se:
        for block in model.modules():
            if isinstance(block, SEBlock):  # an instance attribute, shadowing the method
                block.excite = torch.compiler.disable(block.excite, recursive=True)
    return torch.compile(model, mode=mode, backend=backend)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: bool,
    channels_last: bool,
    augment: Augmenter | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch ``x`` (B, F, T), ``y`` (B,), augmented on the device when
    ``augment`` says so; returns the detached loss and logits, still on the device (reading
    them would sync the host)."""
    mixing = augment is not None and augment.enabled
    if mixing:
        x, y_a, y_b, lam = augment(x, y)
    with autocast(x.device, amp):
        logits = model(model_input(x, channels_last)).float()
    # mixup_loss is exactly the cross-entropy when nothing was mixed (lam = 1)
    loss = mixup_loss(logits, y_a, y_b, lam) if mixing else F.cross_entropy(logits, y)
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
    if "gpu_mem_peak_gib" in metrics:
        line += (
            f" | GPU peak {metrics['gpu_mem_peak_gib']:.2f} GiB "
            f"(1 of {metrics['trials_per_gpu']} trials on it)"
        )
    if "test_acc" in metrics:
        line += (
            f" | test (best epoch {metrics['best_epoch']}) segment acc "
            f"{metrics['test_acc']:.3f} track acc {metrics['test_track_acc']:.3f}"
        )
    return line
