"""Where shards come from when a command is not given ``--shards``: the user's audio
(``--data``) or the embedded default, the synthetic mini-GTZAN, generated into a user cache;
either way prepared once and reused (:func:`ensure_shards`).

The cache folder is ``$RAYSEARCH_CACHE`` if set, else ``$XDG_CACHE_HOME/raysearch`` or
``~/.cache/raysearch``. The command-line tools read it; library functions take paths.
On a multi-node cluster the cache is node-local: ``tune --data`` keeps its shards beside the
search's storage instead (:func:`shards_beside`), and ``--shards`` names a shared location.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.data.split import SplitSpec
from raysearch.data.synth import DEFAULT_CLIPS_PER_GENRE, DEFAULT_DURATION, DEFAULT_SEED
from raysearch.storage import is_uri, join

if TYPE_CHECKING:
    from raysearch.data.pipeline import ChangedInput

SHARDS_FOLDER = "_shards"  # in a search's storage: the shards tune --data prepares


def cache_dir() -> Path:
    if os.environ.get("RAYSEARCH_CACHE"):
        return Path(os.environ["RAYSEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "raysearch"


@dataclass(frozen=True)
class SyntheticSet:
    """The synthetic mini-GTZAN's parameters (:mod:`raysearch.data.synth`)."""

    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE
    duration: float = DEFAULT_DURATION  # seconds per clip
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class ShardRequest:
    """Which shards a command needs: of ``data`` (a GTZAN root, path or URI; None: the
    synthetic set ``synthetic``), with these spectrogram and split settings, at ``out`` (None:
    a cache folder named after the input and the settings)."""

    data: str | None = None
    out: str | None = None
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    split: SplitSpec = field(default_factory=SplitSpec)
    synthetic: SyntheticSet = field(default_factory=SyntheticSet)
    overwrite: bool = False  # replace shards made with other settings at ``out``
    clips_per_task: int | None = None  # clips one Ray task handles (None: the pipeline's choice)
    # shards at ``out`` of these settings but of other audio: "refuse", "replace" or "keep"
    # (:func:`raysearch.data.pipeline.prepare`); None: "replace" in the cache raysearch owns
    # (``out`` None), "refuse" at a folder the user named
    changed_input: ChangedInput | None = None


def synthetic_root(clips_per_genre: int, duration: float, seed: int) -> Path:
    return cache_dir() / f"synthetic-c{clips_per_genre}-d{duration:g}-s{seed}"


def shards_key(data_root: str, config: SpectrogramConfig, split: SplitSpec) -> str:
    """The name of the shard folder of this input with these settings: settings never
    collide, and the same input and settings find their shards again."""
    from raysearch.data.pipeline import settings_hash

    root = data_root if is_uri(data_root) else os.path.abspath(data_root)
    return hashlib.sha256(f"{root}|{settings_hash(config, split)}".encode()).hexdigest()[:12]


def default_shards_dir(data_root: str, config: SpectrogramConfig, split: SplitSpec) -> Path:
    """The node-local cache folder of this input's shards with these settings."""
    return cache_dir() / "shards" / shards_key(data_root, config, split)


def shards_beside(storage: str, data_root: str, config: SpectrogramConfig, split: SplitSpec) -> str:
    """The shard folder ``raysearch tune --data`` uses: under the search's storage
    (``STORAGE/_shards/KEY``), which every node of a cluster reaches, unlike the cache."""
    return join(storage, SHARDS_FOLDER, shards_key(data_root, config, split))


def ensure_synthetic(synthetic: SyntheticSet = SyntheticSet(), progress: bool = True) -> Path:
    """Generate (or reuse) the synthetic mini-GTZAN with these parameters; returns its root."""
    from raysearch.data.synth import generate

    root = synthetic_root(synthetic.clips_per_genre, synthetic.duration, synthetic.seed)
    generate(
        root,
        clips_per_genre=synthetic.clips_per_genre,
        duration=synthetic.duration,
        seed=synthetic.seed,
        workers=min(16, os.cpu_count() or 1),
        progress=progress,
    )
    return root


def ensure_shards(request: ShardRequest, connect: Callable[[], None]):
    """Prepare (or reuse) the shards ``request`` describes; returns the pipeline's
    ``PrepareResult``. ``connect`` joins or starts Ray; it is called after the synthetic set
    is generated, so the generator's process pool never forks a process holding Ray's
    connections."""
    from raysearch.data.pipeline import prepare

    data = request.data or str(ensure_synthetic(request.synthetic))
    out = request.out or str(default_shards_dir(data, request.spectrogram, request.split))
    changed_input = request.changed_input or ("replace" if request.out is None else "refuse")
    connect()
    return prepare(
        data,
        out,
        request.spectrogram,
        request.split,
        overwrite=request.overwrite,
        clips_per_task=request.clips_per_task,
        changed_input=changed_input,
    )
