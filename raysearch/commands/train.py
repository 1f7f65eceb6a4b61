"""``raysearch train`` (``python -m raysearch.train``): train one SE-CNN configuration with Ray
Train and write a run folder (``metrics.csv``, ``summary.json``, ``checkpoint/``, accuracy /
loss / confusion plots).

The options become a :class:`ModelConfig` and a :class:`TrainConfig`; the work is
:func:`raysearch.training.runner.run`, a ``TorchTrainer`` running the loop on ``--workers``
ranks (DDP), so Ray places the run on a GPU node of a cluster when ``--gpu`` asks for one.
"""

from __future__ import annotations

import argparse
import os
import sys

from raysearch.commands.options import (
    add_device_arguments,
    add_ray_arguments,
    fail,
    program,
    ray_options,
)
from raysearch.errors import UserError
from raysearch.model import ModelConfig
from raysearch.storage import normalize
from raysearch.training.config import COMPILE_MODES, KERNEL_CHOICES, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    from raysearch.search.dimensions import add_options

    parser = argparse.ArgumentParser(
        prog=program("train"),
        description="Train one SE-CNN configuration with Ray Train and write a run folder "
        "(metrics.csv, summary.json, checkpoint/, accuracy.png, loss.png, confusion.png).",
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch prepare (path or URI); default: prepare or reuse "
        "the synthetic mini-GTZAN's",
    )
    parser.add_argument(
        "--out", default="runs/train", help="run folder to write (default: %(default)s)"
    )
    add_options(parser)  # the model and training dimensions (raysearch.search.dimensions)
    parser.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="seed of weights, order, dropout and augmentation (default: %(default)s)",
    )
    where = parser.add_argument_group("where it runs")
    where.add_argument(
        "--workers",
        type=int,
        default=TrainConfig.workers,
        help="Ray Train workers (DDP ranks) (default: %(default)s)",
    )
    add_device_arguments(where, "train")
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
        help="torch.compile mode; auto compiles on CUDA only (default: %(default)s; measured "
        "in docs/performance.md)",
    )
    where.add_argument(
        "--kernels",
        choices=KERNEL_CHOICES,
        default=TrainConfig.kernels,
        help="how each block's conv → ReLU → max-pool runs, the same function each way: auto "
        "(select when compiled, aten when eager), aten "
        "(F.relu, F.max_pool2d), select (one op keeping a 1-byte window slot; its backward is "
        "an elementwise select), select-conv1 (also block 1's one-channel conv inside it), "
        "triton-conv1 (block 1 as a Triton kernel pair; CUDA) "
        "(default: %(default)s; docs/performance.md)",
    )
    add_ray_arguments(parser)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The model (not yet sized for the shards) and training settings the options give."""
    from raysearch.search.dimensions import values_from_args

    for masks, width in (("freq_masks", "freq_width"), ("time_masks", "time_width")):
        if getattr(args, masks) and not getattr(args, width):
            raise UserError(
                f"--{masks.replace('_', '-')} {getattr(args, masks)} masks nothing without "
                f"--{width.replace('_', '-')} (the widest mask; its default is 0)"
            )
    model = ModelConfig(**values_from_args(args, "model"))
    threads = args.threads if args.threads is not None else (os.cpu_count() or 1) // args.workers
    train = TrainConfig(
        **values_from_args(args, "train"),
        seed=args.seed,
        workers=args.workers,
        use_gpu=args.use_gpu,
        cpus_per_worker=args.cpus_per_worker,
        torch_threads=max(1, threads),
        compile=args.compile,
        kernels=args.kernels,
    )
    return model, train


def summary_line(final: dict) -> str:
    """What a run reached; a metric the run did not report shows as ``n/a``."""

    def shown(key: str) -> str:
        value = final.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"epochs {final.get('epochs_run', 'n/a')}, best val acc {shown('best_val_acc')} "
        f"(epoch {final.get('best_epoch', 'n/a')}), test segment acc {shown('test_acc')}, "
        f"test track acc {shown('test_track_acc')}, "
        f"{final.get('n_params', 'n/a')} parameters, on {final.get('device', 'n/a')}"
    )


def main(argv: list[str] | None = None) -> int:
    from raysearch.data.defaults import ShardRequest, ensure_shards
    from raysearch.training.data import sized_like
    from raysearch.training.runner import run

    args = build_parser().parse_args(argv)
    ray = ray_options(args)
    try:
        model, config = configs_from_args(args)
        if args.shards:
            ray.connect()
            shards = normalize(args.shards)
        else:
            shards = ensure_shards(ShardRequest(), ray.connect).out
        final = run(shards, sized_like(model, shards), config, args.out)
    except UserError as exc:
        return fail(str(exc))
    print(f"run folder: {os.path.abspath(args.out)}")
    print(summary_line(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
