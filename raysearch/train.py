"""``python -m raysearch.train``: train one SE-CNN configuration with Ray Train and write a run
folder (``metrics.csv``, ``summary.json``, ``checkpoint/``, accuracy / loss / confusion plots).

The loop is :func:`raysearch.training.loop.fit`, run by a ``TorchTrainer`` on ``--workers``
ranks (DDP), so Ray places the run on a GPU node of a cluster when ``--gpu`` asks for one.
"""

from __future__ import annotations

import argparse
import os
import sys

from raysearch.data.discover import DataError
from raysearch.model import ModelConfig, ModelConfigError
from raysearch.storage import normalize
from raysearch.training.config import COMPILE_MODES, TrainConfig


def parse_int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _ints(values) -> str:
    return ",".join(str(v) for v in values)


def build_parser() -> argparse.ArgumentParser:
    from raysearch.runtime import add_ray_arguments

    parser = argparse.ArgumentParser(
        prog="python -m raysearch.train",
        description="Train one SE-CNN configuration with Ray Train and write a run folder "
        "(metrics.csv, summary.json, checkpoint/, accuracy.png, loss.png, confusion.png).",
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch.prepare (path or URI); default: prepare or reuse "
        "the synthetic mini-GTZAN's",
    )
    parser.add_argument(
        "--out", default="runs/train", help="run folder to write (default: %(default)s)"
    )
    model = parser.add_argument_group("model (report table 4.1)")
    model.add_argument(
        "--channels",
        type=parse_int_list,
        default=ModelConfig.channels,
        metavar="C1,C2,C3,C4,C5",
        help=f"the five conv widths (default: {_ints(ModelConfig.channels)})",
    )
    model.add_argument(
        "--ratio", type=float, default=ModelConfig.ratio, help="SE ratio r (default: %(default)g)"
    )
    model.add_argument(
        "--se-blocks",
        type=parse_int_list,
        default=ModelConfig.se_blocks,
        metavar="B,...",
        help="blocks (1-5) carrying an SE block, '' for none "
        f"(default: {_ints(ModelConfig.se_blocks)})",
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=ModelConfig.dropout,
        help="dropout after every max-pool (default: %(default)g)",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--epochs", type=int, default=TrainConfig.epochs, help="most epochs (default: %(default)s)"
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=TrainConfig.batch_size,
        help="segments per step and worker (default: %(default)s)",
    )
    train.add_argument(
        "--lr", type=float, default=TrainConfig.lr, help="Adam learning rate (default: %(default)g)"
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        default=TrainConfig.weight_decay,
        help="Adam weight decay (default: %(default)g)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=TrainConfig.patience,
        help="stop after this many epochs without a lower validation loss; 0 = never "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="seed of weights, order and dropout (default: %(default)s)",
    )
    train.add_argument(
        "--max-train-segments",
        type=int,
        default=TrainConfig.max_train_segments,
        help="train on a seeded subset of this many segments; 0 = all (default: %(default)s)",
    )
    where = parser.add_argument_group("where it runs")
    where.add_argument(
        "--workers",
        type=int,
        default=TrainConfig.workers,
        help="Ray Train workers (DDP ranks) (default: %(default)s)",
    )
    device = where.add_mutually_exclusive_group()
    device.add_argument(
        "--gpu",
        dest="use_gpu",
        action="store_true",
        default=None,
        help="train on GPUs; an error if the cluster has none and cannot launch one "
        "(default without --gpu/--cpu: GPUs when the cluster has or can launch them)",
    )
    device.add_argument("--cpu", dest="use_gpu", action="store_false", help="train on CPUs")
    where.add_argument(
        "--cpus-per-worker",
        type=float,
        default=TrainConfig.cpus_per_worker,
        help="CPUs each worker reserves in Ray (default: %(default)g)",
    )
    where.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per worker (default: this machine's cores shared among the "
        "workers)",
    )
    where.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=TrainConfig.compile,
        help="torch.compile mode (default: %(default)s; measured in docs/performance.md)",
    )
    add_ray_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from raysearch.cluster import GpuUnavailable
    from raysearch.runtime import init_ray
    from raysearch.training.data import model_config_for
    from raysearch.training.runner import run

    args = build_parser().parse_args(argv)
    try:
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            patience=args.patience,
            seed=args.seed,
            workers=args.workers,
            use_gpu=args.use_gpu,
            cpus_per_worker=args.cpus_per_worker,
            torch_threads=args.threads
            if args.threads is not None
            else max(1, (os.cpu_count() or 1) // args.workers),
            max_train_segments=args.max_train_segments,
            compile=args.compile,
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
        final = run(shards, model_config, config, args.out)
    except (DataError, ModelConfigError, GpuUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run folder: {os.path.abspath(args.out)}")
    print(
        f"epochs {final.get('epochs_run')}, best val acc {final.get('best_val_acc', 0):.3f} "
        f"(epoch {final.get('best_epoch')}), test segment acc {final.get('test_acc', 0):.3f}, "
        f"test track acc {final.get('test_track_acc', 0):.3f}, "
        f"{final.get('n_params')} parameters, on {final.get('device')}"
    )
    return 0


def default_shards() -> str:
    """Prepare (or reuse) the synthetic default's shards; returns their folder."""
    from raysearch.prepare import build_parser as prepare_parser
    from raysearch.prepare import ensure_shards

    return ensure_shards(prepare_parser().parse_args([])).out


if __name__ == "__main__":
    sys.exit(main())
