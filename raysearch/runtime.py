"""Connecting the command-line tools to a Ray cluster (never done at import time)."""

from __future__ import annotations

import logging
import os


def init_ray(
    address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None
) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``) if given, else start a local Ray instance.

    ``num_cpus`` / ``num_gpus`` only apply to a local instance; a cluster has its own.
    """
    import ray

    if ray.is_initialized():
        return
    kwargs: dict = {
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)


def add_ray_arguments(parser) -> None:
    """The --address / --num-cpus options every command shares."""
    group = parser.add_argument_group("Ray cluster")
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. 'auto' or 'ray://host:10001'); "
        "default: $RAY_ADDRESS, else start a local Ray instance",
    )
    group.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        help="CPUs of the local Ray instance (default: all of this machine's)",
    )
