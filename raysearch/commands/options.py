"""Options several commands share, declared once: the Ray cluster (``--address``,
``--num-cpus``), the device (``--gpu`` / ``--cpu``), the program name their ``--help`` shows,
and the errors a user can fix, which a command prints as one line and exits 2 on."""

from __future__ import annotations

import argparse
import sys

from raysearch.runtime import RayOptions


def program(command: str) -> str:
    """The name a command's ``--help`` shows: ``raysearch tune`` when run through the
    ``raysearch`` command, ``python -m raysearch.tune`` otherwise."""
    invoked = sys.argv[0] if sys.argv else ""
    return invoked if invoked == f"raysearch {command}" else f"python -m raysearch.{command}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """``--address`` / ``--num-cpus``: the cluster to join, or the local instance's size."""
    group = parser.add_argument_group("Ray cluster")
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. 'auto' or 'ray://host:10001'); "
        "default: $RAY_ADDRESS, else start a local Ray instance",
    )
    group.add_argument(
        "--num-cpus",
        type=positive_int,
        default=None,
        help="CPUs of the local Ray instance (default: all of this machine's)",
    )


def ray_options(args: argparse.Namespace) -> RayOptions:
    return RayOptions(address=args.address, num_cpus=args.num_cpus)


def add_device_arguments(parser, what: str) -> None:
    """``--gpu`` / ``--cpu`` (``args.use_gpu``: True, False, or None to decide from the
    cluster); ``what`` says what runs there ("every trial", "the run")."""
    device = parser.add_mutually_exclusive_group()
    device.add_argument(
        "--gpu",
        dest="use_gpu",
        action="store_true",
        default=None,
        help=f"{what} on GPUs; an error if the cluster has none and cannot launch one "
        "(default without --gpu/--cpu: GPUs when the cluster has or can launch them)",
    )
    device.add_argument("--cpu", dest="use_gpu", action="store_false", help=f"{what} on CPUs")


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; the exit status of a command refused for it."""
    print(f"error: {message}", file=sys.stderr)
    return 2
