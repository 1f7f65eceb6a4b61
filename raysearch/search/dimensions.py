"""The settings of one trial, declared once: from this table come the search-space schema
(which keys ``params:``, ``model:`` and ``train:`` accept), the options of
``python -m raysearch.train`` and the leaderboard's best command. A new search dimension is a
field of :class:`~raysearch.model.ModelConfig` or :class:`~raysearch.training.config.TrainConfig`
(its default and its check) plus one :class:`Dimension` here.

Runtime settings (workers, devices, threads, precision, compilation, evaluation batch size)
say where and how fast a configuration trains, not what it is: they are fixed in a space's
``train:`` section or given on the command line, never searched, and not in the best command
except for two that change the numbers: a space's compile mode, and the torch thread count of
a trial that trained on CPUs (:func:`raysearch.results.write.best_command`).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, fields
from typing import Any

from raysearch.model import ModelConfig
from raysearch.training.config import TrainConfig


@dataclass(frozen=True)
class Dimension:
    name: str  # the key in a space and the field of its config
    target: str  # "model" (ModelConfig) or "train" (TrainConfig)
    kind: str  # float | int | str | ints (a comma-separated list of integers)
    help: str
    choices: tuple = ()  # allowed values of a str dimension
    searchable: bool = True  # may appear under params:
    metavar: str | None = None

    @property
    def default(self) -> Any:
        config = ModelConfig if self.target == "model" else TrainConfig
        return {f.name: f for f in fields(config)}[self.name].default

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def format(self, value: Any) -> str:
        """The value as the train command line takes it."""
        if self.kind == "ints":
            return ",".join(str(int(v)) for v in value)
        if self.kind == "float":
            return repr(float(value))  # exact: the round trip must give the same float
        return str(value)

    def parse(self, text: str) -> Any:
        """argparse type: the command-line text as the config's value."""
        try:
            if self.kind == "ints":
                return tuple(int(v) for v in text.split(",") if v.strip() != "")
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
        except ValueError:
            expected = {"ints": "comma-separated integers", "int": "an integer"}
            raise argparse.ArgumentTypeError(
                f"expected {expected.get(self.kind, 'a number')}, got {text!r}"
            ) from None
        return text

    def shown_default(self) -> str:
        if self.kind == "ints":
            return ",".join(str(v) for v in self.default) or "''"
        return f"{self.default:g}" if self.kind == "float" else str(self.default)


DIMENSIONS: tuple[Dimension, ...] = (
    # the network (report table 4.1)
    Dimension("channels", "model", "ints", "the five conv widths", metavar="C1,...,C5"),
    Dimension("ratio", "model", "float", "SE ratio r: bottleneck width max(1, round(C / r))"),
    Dimension(
        "se_blocks",
        "model",
        "ints",
        "blocks (1-5) carrying an SE block, '' for none",
        metavar="B,...",
    ),
    Dimension("dropout", "model", "float", "dropout after every max-pool"),
    Dimension(
        "head",
        "model",
        "str",
        "classifier: dense (flatten, one dense layer; report table 4.1) or gap (global "
        "average pooling, one linear layer)",
        choices=("dense", "gap"),
    ),
    # training
    Dimension("epochs", "train", "int", "most epochs", searchable=False),
    Dimension("batch_size", "train", "int", "segments per step and worker"),
    Dimension("lr", "train", "float", "Adam learning rate"),
    Dimension("weight_decay", "train", "float", "Adam weight decay"),
    Dimension(
        "patience",
        "train",
        "int",
        "stop after this many epochs without a lower validation loss; 0 = never",
        searchable=False,
    ),
    Dimension(
        "max_train_segments",
        "train",
        "int",
        "train on a seeded subset of this many segments; 0 = all",
        searchable=False,
    ),
    # augmentation (on the device, training batches only)
    Dimension("freq_masks", "train", "int", "SpecAugment frequency masks per segment"),
    Dimension("freq_width", "train", "int", "widest frequency mask, in bins"),
    Dimension("time_masks", "train", "int", "SpecAugment time masks per segment"),
    Dimension("time_width", "train", "int", "widest time mask, in frames"),
    Dimension("mixup_alpha", "train", "float", "mixup Beta(alpha, alpha); 0 = off"),
)
BY_NAME = {d.name: d for d in DIMENSIONS}

# Searchable, but not a config field: multiplies every channel width (see space.scale_width).
DERIVED = ("width",)
# TrainConfig fields a space may fix in train: but never search (see the module docstring);
# seed comes from the space's repeats, workers / CPUs / GPUs from its resources.
RUNTIME_TRAIN_KEYS = (
    "torch_threads",
    "eval_batch_size",
    "amp",
    "channels_last",
    "compile",
    "kernels",
)


def searchable() -> tuple[str, ...]:
    return tuple(d.name for d in DIMENSIONS if d.searchable) + DERIVED


def fixed_keys(target: str) -> tuple[str, ...]:
    names = tuple(d.name for d in DIMENSIONS if d.target == target)
    return names + (RUNTIME_TRAIN_KEYS if target == "train" else ())


def add_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per dimension, grouped as the configs are, defaults shown once."""
    groups = {
        "model": parser.add_argument_group("model (report table 4.1)"),
        "train": parser.add_argument_group("training"),
    }
    for dim in DIMENSIONS:
        groups[dim.target].add_argument(
            dim.flag,
            dest=dim.name,
            type=dim.parse,
            default=dim.default,
            choices=dim.choices or None,
            metavar=dim.metavar or (None if dim.choices else dim.kind.upper()),
            help=f"{dim.help} (default: {dim.shown_default()})",
        )


def values_from_args(args: argparse.Namespace, target: str) -> dict:
    """The parsed options of one config."""
    return {d.name: getattr(args, d.name) for d in DIMENSIONS if d.target == target}


def command_arguments(model: ModelConfig, train: TrainConfig) -> list[str]:
    """Options that give exactly ``model`` and ``train``'s dimensions: every model dimension,
    and each training dimension that differs from its default."""
    parts = []
    for dim in DIMENSIONS:
        value = getattr(model if dim.target == "model" else train, dim.name)
        if dim.target == "train" and value == dim.default:
            continue
        parts.append(f"{dim.flag} {shlex.quote(dim.format(value))}")
    return parts
