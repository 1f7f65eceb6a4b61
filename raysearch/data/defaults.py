"""Where the embedded default lives: the synthetic mini-GTZAN and its shards, in a user cache.

The cache folder is ``$RAYSEARCH_CACHE`` if set, else ``$XDG_CACHE_HOME/raysearch`` or
``~/.cache/raysearch``. The command-line tools read it; library functions take paths.
On a multi-node cluster the cache is node-local: give ``--shards`` a shared location there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.data.split import SplitSpec


def cache_dir() -> Path:
    if os.environ.get("RAYSEARCH_CACHE"):
        return Path(os.environ["RAYSEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "raysearch"


def synthetic_root(clips_per_genre: int, duration: float, seed: int) -> Path:
    return cache_dir() / f"synthetic-c{clips_per_genre}-d{duration:g}-s{seed}"


def default_shards_dir(data_root: str, config: SpectrogramConfig, split: SplitSpec) -> Path:
    """A shard folder named after the input and the settings, so settings never collide."""
    from raysearch.data.pipeline import settings_hash

    key = hashlib.sha256(f"{os.path.abspath(data_root)}|{settings_hash(config, split)}".encode())
    return cache_dir() / "shards" / key.hexdigest()[:12]


def ensure_synthetic(
    clips_per_genre: int | None = None,
    duration: float | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate (or reuse) the synthetic mini-GTZAN with the given or default parameters."""
    from raysearch import synth

    clips_per_genre = synth.DEFAULT_CLIPS_PER_GENRE if clips_per_genre is None else clips_per_genre
    duration = synth.DEFAULT_DURATION if duration is None else duration
    seed = synth.DEFAULT_SEED if seed is None else seed
    root = synthetic_root(clips_per_genre, duration, seed)
    synth.generate(
        root,
        clips_per_genre=clips_per_genre,
        duration=duration,
        seed=seed,
        workers=min(4, os.cpu_count() or 1),
        progress=progress,
    )
    return root
