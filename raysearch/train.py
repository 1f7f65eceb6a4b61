"""``python -m raysearch.train``: train one SE-CNN configuration with Ray Train and write a run
folder (``metrics.csv``, ``summary.json``, ``checkpoint/``, accuracy / loss / confusion plots).

The loop is :func:`raysearch.training.loop.fit`, run by a ``TorchTrainer`` on ``--workers``
ranks (DDP), so Ray places the run on a GPU node of a cluster when ``--gpu`` asks for one.
"""

from __future__ import annotations

import argparse
import os
import sys

from raysearch.cli import program  # noqa: E402
from raysearch.data.discover import DataError
from raysearch.model import ModelConfig, ModelConfigError
from raysearch.storage import normalize
from raysearch.training.config import COMPILE_MODES, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    from raysearch.dimensions import add_options
    from raysearch.runtime import add_ray_arguments

    parser = argparse.ArgumentParser(
        prog=program("train"),
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
    add_options(parser)  # the model and training dimensions (raysearch.dimensions)
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
    device = where.add_mutually_exclusive_group()
    device.add_argument(
        "--gpu",
        dest="use_gpu",
        action="store_true",
        default=None,
        help="train on GPUs; an error if the cluster has none and cannot launch one "
        "(without --gpu/--cpu: GPUs when the cluster has or can launch them)",
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
        help="torch.compile mode; auto compiles on CUDA only (default: %(default)s; measured "
        "in docs/performance.md)",
    )
    add_ray_arguments(parser)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The model (not yet sized for the shards) and training settings the options give."""
    from raysearch.dimensions import values_from_args

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
    )
    return model, train


def main(argv: list[str] | None = None) -> int:
    from raysearch.cluster import GpuUnavailable
    from raysearch.runtime import init_ray
    from raysearch.training.data import sized_like
    from raysearch.training.runner import run

    args = build_parser().parse_args(argv)
    try:
        model, config = configs_from_args(args)
        if args.shards:
            init_ray(args.address, args.num_cpus)
            shards = normalize(args.shards)
        else:
            shards = default_shards(args.address, args.num_cpus)
        final = run(shards, sized_like(model, shards), config, args.out)
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


def default_shards(
    address: str | None = None, num_cpus: int | None = None, prepare_args: tuple = ()
) -> str:
    """Prepare (or reuse) the synthetic default's shards on the Ray cluster at ``address`` (or
    a local one with ``num_cpus``); returns their folder. The clips are generated before Ray
    starts: the generator's process pool never forks a process holding Ray's connections."""
    from raysearch.prepare import build_parser as prepare_parser
    from raysearch.prepare import ensure_shards

    argv = (["--address", address] if address else []) + (
        ["--num-cpus", str(num_cpus)] if num_cpus else []
    )
    argv += list(prepare_args)  # a profile's synthetic set and features
    return ensure_shards(prepare_parser().parse_args(argv)).out


if __name__ == "__main__":
    sys.exit(main())
