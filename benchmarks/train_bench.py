"""Benchmark: the project's training loop, in this process and in a Ray Train worker group,
against a bare PyTorch loop.

Every side trains the same SE-CNN (sized from the shard manifest by ``model_config_for``) on
the same train split, with the same batch size, optimizer (Adam, lr 1e-3), epochs and number of
torch threads, one after the other in one process:

* **bare**: the train split read with pyarrow into one float16 tensor, shuffled every epoch
  with ``torch.randperm``, a per-batch host read of loss and accuracy; no Ray at all.
* **fit**: :func:`raysearch.training.loop.fit` in this process (what a search trial runs).
* **fit-augment**: the same with the ``augment`` space's SpecAugment masks and mixup on
  (``--sides bare,fit,fit-augment``: the cost of augmentation per step).
* **train-group**: the same ``fit`` in a Ray Train worker group of one
  (:func:`raysearch.training.runner.build_trainer`, what ``python -m raysearch.train`` runs).

Per-epoch ``segments_per_s`` is train segments / seconds of that epoch's train loop.

The headline number is the steady state: epochs after the first. The end-to-end wall time of
``fit()`` (Ray Train start-up, validation every epoch, the final test evaluation, shutdown) is
reported next to it, separately. Nothing is asserted.

    python benchmarks/train_bench.py                      # 3 epochs, 2 threads, CPU
    python benchmarks/train_bench.py --device cuda        # on a GPU machine (Ray: use_gpu=True)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from machine import (  # first: puts the checkout on sys.path
    REPO,
    cpu_snapshot,
    load1,
    machine_facts,
    other_cpu_s,
    say,
    start_local_ray,
    uptime_line,
)


def machine_facts_with_gpu() -> dict:
    facts = machine_facts(("ray", "torch", "numpy", "pyarrow"), REPO)
    try:
        import torch

        facts["cuda"] = torch.cuda.is_available()
        if facts["cuda"]:
            facts["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        facts["cuda"] = False
    return facts


# ----------------------------------------------------------------------------- data


def read_split(shards: str, split: str):
    """(x float16 (N, F, T), y int64 (N,)) of one split, with pyarrow only."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raysearch.data.pipeline import read_manifest, split_path

    shape = tuple(read_manifest(shards)["shape"])
    table = pq.read_table(split_path(shards, split), columns=["spectrogram", "label"])
    column = table.column("spectrogram").combine_chunks()
    if isinstance(column, pa.ExtensionArray):  # Ray's tensor type, if ray.data registered it
        column = column.storage
    values = column.flatten().to_numpy(zero_copy_only=False)
    x = np.ascontiguousarray(values.reshape(len(table), *shape), dtype=np.float16)
    y = table.column("label").to_numpy().astype(np.int64)
    return x, y


def steady(history: list[dict]) -> dict:
    """Segments/s over the epochs after the first (all epochs if there is only one)."""
    epochs = history[1:] or history
    segments = sum(h["train_segments"] for h in epochs)
    seconds = sum(h["train_segments"] / h["segments_per_s"] for h in epochs)
    return {
        "segments_per_s": segments / seconds,
        "epochs": [h["epoch"] for h in epochs],
        "train_s": seconds,
    }


# ----------------------------------------------------------------------------- the two sides


def run_bare(shards: str, model_config, args) -> dict:
    """The plain PyTorch loop over the train split held in memory."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from raysearch.model import SECNN

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    x_np, y_np = read_split(shards, "train")
    if args.max_train_segments:
        x_np, y_np = x_np[: args.max_train_segments], y_np[: args.max_train_segments]
    x = torch.from_numpy(np.array(x_np)).to(device)  # writable copy
    y_all = torch.from_numpy(y_np).to(device)
    model = SECNN(model_config)
    on_gpu = device.type == "cuda"
    if on_gpu:  # what train_loop_per_worker does on a GPU
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    load_s = time.perf_counter() - started
    history = []
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_all)).to(device)
        loss_sum, correct, count = 0.0, 0.0, 0
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            xb, yb = x[index].unsqueeze(1), y_all[index]
            if on_gpu:
                xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(xb).float()
            else:
                logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # the same per-batch bookkeeping as the Ray loop (it syncs the GPU, as there)
            loss_sum += float(loss.detach()) * len(yb)
            correct += float((logits.argmax(1) == yb).sum())
            count += len(yb)
        seconds = time.perf_counter() - epoch_start
        history.append(
            {
                "epoch": epoch,
                "train_loss": loss_sum / count,
                "train_acc": correct / count,
                "train_segments": count,
                "segments_per_s": count / seconds,
            }
        )
        say(
            f"  bare epoch {epoch}/{args.epochs}: loss {loss_sum / count:.3f}, "
            f"{count / seconds:.1f} segments/s"
        )
    return {
        "side": "bare",
        "history": history,
        "load_s": load_s,
        "wall_s": time.perf_counter() - started,
    }


# the augment space's masks (widths fixed there) and a mixup, all on: the most work per step
AUGMENT = {"freq_masks": 2, "freq_width": 27, "time_masks": 2, "time_width": 20, "mixup_alpha": 0.2}


def _config(args, **overrides):
    from raysearch.training.config import TrainConfig

    return TrainConfig(
        **overrides,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=0,
        seed=args.seed,
        workers=1,
        use_gpu=args.device == "cuda",
        cpus_per_worker=1,
        torch_threads=args.threads,
        max_train_segments=args.max_train_segments,
    )


def _history(final: dict) -> list[dict]:
    keys = ("epoch", "train_loss", "train_acc", "train_segments", "segments_per_s", "epoch_s")
    return [{k: h.get(k) for k in keys} for h in final.get("history", [])]


def run_fit(shards: str, model_config, args, augment: bool = False) -> dict:
    """The project's training loop (what a search trial runs) in this process, no Ray."""
    import torch

    from raysearch.training.data import load_splits
    from raysearch.training.loop import Placement, fit

    started = time.perf_counter()
    splits = load_splits(shards)
    loaded = time.perf_counter()
    config = _config(args, **(AUGMENT if augment else {}))
    final = fit(
        model_config, config, splits, lambda m, c: None, Placement(torch.device(args.device))
    )
    wall = time.perf_counter() - started
    history = _history(final)
    train_s = sum(h["train_segments"] / h["segments_per_s"] for h in history)
    return {
        "side": "fit-augment" if augment else "fit",
        "history": history,
        "wall_s": wall,
        "load_s": loaded - started,
        "train_loops_s": train_s,
        "rest_s": wall - (loaded - started) - train_s,  # model, validation, test, checkpoints
    }


def run_train_group(shards: str, model_config, args, storage: str) -> dict:
    """The same loop through a Ray Train worker group of one (raysearch.commands.train's path)."""
    import ray

    from raysearch.training.data import load_splits, spectrogram_settings
    from raysearch.training.runner import build_trainer

    started = time.perf_counter()
    splits_ref = ray.put(load_splits(shards))
    trainer = build_trainer(
        model_config,
        _config(args),
        splits_ref,
        spectrogram_settings(shards),
        name="train-bench",
        storage_path=storage,
    )
    built = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - started
    final = dict(result.return_value or {})
    history = _history(final)
    if not history:
        raise RuntimeError(f"Ray Train run returned no history: {result.error}")
    train_s = sum(h["train_segments"] / h["segments_per_s"] for h in history)
    worker_s = final.get("train_wall_s", float("nan"))
    return {
        "side": "train-group",
        "history": history,
        "wall_s": wall,
        "load_s": built - started,  # read the shards, put them in the object store
        "train_loops_s": train_s,
        # Ray Train start-up / teardown around the worker's loop
        "outside_worker_s": wall - (built - started) - worker_s,
        "rest_s": worker_s - train_s,  # model, validation, test, checkpoints
    }


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Ray Train + Ray Data training throughput "
        "(raysearch.training.runner.build_trainer) vs a bare PyTorch loop over the same train "
        "split held in memory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder; default: the synthetic default's shards (prepared if missing)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per side")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch threads, both sides (Ray: TrainConfig.torch_threads)",
    )
    parser.add_argument(
        "--sides",
        default="bare,fit,train-group",
        help="comma-separated sides: bare (plain PyTorch), fit (the project's loop in this "
        "process), fit-augment (the same with SpecAugment masks and mixup on), train-group "
        "(the loop in a Ray Train worker group)",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: the bare loop runs on the GPU and the Ray run uses use_gpu=True",
    )
    parser.add_argument(
        "--max-train-segments", type=int, default=0, help="0 = the whole train split"
    )
    parser.add_argument(
        "--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance"
    )
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sides = [f.strip() for f in args.sides.split(",") if f.strip()]
    known = ("bare", "fit", "fit-augment", "train-group")
    if "bare" not in sides or any(f not in known for f in sides):
        print(f"error: --sides must list bare and any of fit, train-group: {args.sides!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.epochs < 1 or args.threads < 1 or args.batch_size < 1:
        print("error: --epochs, --threads and --batch-size must be >= 1", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2

    facts = machine_facts_with_gpu()
    facts["uptime_before"] = uptime_line()
    say(f"machine: {facts['cores']} cores, {facts['cpu_model']}, cuda {facts['cuda']}")
    say(f"load before: {facts['uptime_before']}")

    import ray

    ray_init_s = start_local_ray(
        args.num_cpus,
        REPO,
        # the workers' own INFO logs (one TrainingReport dump per epoch) drown the progress
        # lines; their print()s still come through
        logging_config=ray.LoggingConfig(log_level="WARNING"),
    )
    say(f"ray.init: {ray_init_s:.2f} s (in no number below)")

    from raysearch.training.data import model_config_for

    if args.shards:
        shards = args.shards
    else:
        from raysearch.commands.prepare import build_parser as prepare_parser
        from raysearch.commands.prepare import ensure_shards

        shards = ensure_shards(prepare_parser().parse_args([])).out
    model_config = model_config_for(shards)
    from raysearch.data.pipeline import read_manifest

    counts = read_manifest(shards)["counts"]["segments"]
    say(f"shards: {shards} (segments {counts})")

    results: dict = {
        "benchmark": "train",
        "args": vars(args),
        "shards": shards,
        "segments": counts,
        "model": model_config.to_dict(),
        "machine": facts,
        "ray_init_s": ray_init_s,
        "runs": [],
    }
    storage = tempfile.mkdtemp(prefix="train-bench-")
    try:
        for side in sides:
            before = load1()
            cpu_before = cpu_snapshot()
            say(f"{side}: {args.epochs} epochs")
            if side == "bare":
                run = run_bare(shards, model_config, args)
            elif side in ("fit", "fit-augment"):
                run = run_fit(shards, model_config, args, augment=side == "fit-augment")
            else:
                run = run_train_group(shards, model_config, args, storage)
            run.update(
                steady=steady(run["history"]),
                load1_before=before,
                load1_after=load1(),
                other_cpu_s=other_cpu_s(cpu_before, cpu_snapshot()),
            )
            results["runs"].append(run)
            say(
                f"  steady {run['steady']['segments_per_s']:.1f} segments/s, wall "
                f"{run['wall_s']:.1f} s (load {before} → {run['load1_after']}, other "
                f"processes' CPU {run['other_cpu_s']} s)"
            )
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        ray.shutdown()
    facts["uptime_after"] = uptime_line()
    summarise(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        say(f"wrote {args.json}")
    return 0


def summarise(results: dict) -> None:
    runs = results["runs"]
    bare = next(r for r in runs if r["side"] == "bare")
    base = bare["steady"]["segments_per_s"]
    args = results["args"]
    print()
    print(
        f"train segments {results['segments'].get('train')}, batch {args['batch_size']}, "
        f"{args['threads']} torch threads, {args['epochs']} epochs, device {args['device']}"
    )
    epochs = max(len(r["history"]) for r in runs)
    head = "".join(f" {'ep' + str(e):>7}" for e in range(1, epochs + 1))
    print(
        f"{'side':<12}{head} {'steady':>8} {'vs bare':>8} {'wall s':>8} {'other CPU s':>11}  load1"
    )
    summary = {}
    for r in runs:
        cells = "".join(f" {h['segments_per_s']:>7.1f}" for h in r["history"])
        value = r["steady"]["segments_per_s"]
        summary[r["side"]] = {"steady_segments_per_s": value, "ratio_vs_bare": value / base}
        print(
            f"{r['side']:<12}{cells} {value:>8.1f} {value / base:>7.2f}x {r['wall_s']:>8.1f} "
            f"{str(r['other_cpu_s']):>11}  "
            f"{r['load1_before']}→{r['load1_after']}"
        )
    print("(segments/s per epoch = train segments / train-loop seconds; steady = epochs 2+)")
    print()
    print(f"ray.init: {results['ray_init_s']:.2f} s (before every side; in no number above)")
    print(f"bare: reading the split into a tensor + model build {bare['load_s']:.2f} s")
    for r in runs:
        if r["side"] == "bare":
            continue
        outside = r.get("outside_worker_s")
        print(
            f"{r['side']}: wall {r['wall_s']:.1f} s = shards read {r['load_s']:.1f} s"
            + (f" + Ray Train start-up/teardown {outside:.1f} s" if outside is not None else "")
            + f" + model, validation, test, checkpoints {r['rest_s']:.1f} s + train loops "
            f"{r['train_loops_s']:.1f} s"
        )
    print(
        "other CPU s: CPU seconds that processes outside this benchmark used during the side "
        "(another user's work; 0 on a quiet machine)"
    )
    print(f"load: before {results['machine']['uptime_before']}")
    print(f"      after  {results['machine']['uptime_after']}")
    results["summary"] = summary


if __name__ == "__main__":
    sys.exit(main())
