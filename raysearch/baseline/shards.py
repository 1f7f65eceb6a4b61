"""The classical baseline of a shard folder: each split's features from its Parquet files (read
in batches, so a split of GTZAN's size never sits in memory as float32), the classifier fitted
with C chosen on validation, the result cached beside the shards and reused. No Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields

import numpy as np
from threadpoolctl import threadpool_limits

from raysearch.baseline.cache import cache_key, cache_path, read_cached, write_cached
from raysearch.baseline.classifier import FeatureSplit, fit_and_score
from raysearch.baseline.config import BaselineConfig
from raysearch.baseline.features import (
    CHUNK,
    coefficients,
    feature_names,
    mel_bands,
    segment_features,
)
from raysearch.baseline.result import BaselineResult
from raysearch.data.pipeline import read_manifest, split_path
from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.data.split import SPLITS
from raysearch.errors import UserError

DEFAULT = BaselineConfig()


class BaselineError(UserError):
    """The shards cannot give a baseline (an empty split); the message names them."""


def spectrogram_config(manifest: dict) -> SpectrogramConfig:
    """The :class:`SpectrogramConfig` the shards were made with (their manifest's)."""
    recorded = manifest.get("spectrogram", {})
    names = {f.name for f in fields(SpectrogramConfig)}
    return SpectrogramConfig(**{k: v for k, v in recorded.items() if k in names})


def split_batches(
    shards: str, split: str, shape: tuple[int, int], rows: int = CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(spectrogram (n, F, T) float16, label (n,), track_id (n,))`` batches of one split."""
    import pyarrow.dataset as ds

    from raysearch.storage import resolve
    from raysearch.training.data import spectrogram_values

    filesystem, path = resolve(split_path(shards, split))
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet")
    batches = dataset.to_batches(
        columns=["track_id", "label", "spectrogram"],
        batch_size=rows,
        batch_readahead=1,  # pyarrow's default read-ahead held about 0.5 GB more of a split
        fragment_readahead=1,
    )
    for batch in batches:
        if batch.num_rows == 0:
            continue
        yield (
            spectrogram_values(batch.column("spectrogram"), shape),
            batch.column("label").to_numpy().astype(np.int64),
            np.asarray(batch.column("track_id").to_pylist(), dtype=object),
        )


def split_features(
    batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]],
    spectrogram: SpectrogramConfig,
    config: BaselineConfig,
) -> FeatureSplit:
    """The features of every segment the batches hold."""
    xs, labels, tracks = [], [], []
    for segments, label, track_id in batches:
        xs.append(segment_features(segments, spectrogram, config.features))
        labels.append(label)
        tracks.append(track_id)
    width = len(feature_names(spectrogram, config.features))
    return FeatureSplit(
        x=np.concatenate(xs) if xs else np.zeros((0, width)),
        label=np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
        track_id=np.concatenate(tracks) if tracks else np.zeros(0, dtype=object),
    )


def _array_batches(arrays, rows: int = CHUNK):
    """Batches of a split already in memory (:class:`raysearch.training.data.SplitArrays`)."""
    for start in range(0, len(arrays), rows):
        end = start + rows
        yield arrays.spectrogram[start:end], arrays.label[start:end], arrays.track_id[start:end]


def compute_baseline(
    shards: str, config: BaselineConfig = DEFAULT, splits: Mapping | None = None
) -> BaselineResult:
    """The baseline of ``shards``, computed now (no cache). ``splits``: the splits already read
    (``load_splits``'s arrays, as a search holds them), to skip reading the Parquet again."""
    manifest = read_manifest(shards)
    counts = manifest.get("counts", {}).get("segments", {})
    empty = [s for s in SPLITS if not counts.get(s)]
    if empty:
        raise BaselineError(f"{shards}: the {', '.join(empty)} split(s) are empty; no baseline")
    spectrogram = spectrogram_config(manifest)
    shape = tuple(manifest["shape"])
    # one BLAS thread: these matrices are small, and on a busy machine BLAS threads waiting
    # for a core made the fits many times slower (docs/performance.md)
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        features = {
            split: split_features(
                _array_batches(splits[split]) if splits else split_batches(shards, split, shape),
                spectrogram,
                config,
            )
            for split in SPLITS
        }
        features_s = time.perf_counter() - started
        fit = fit_and_score(
            features["train"],
            features["val"],
            features["test"],
            manifest["labels"],
            config.classifier,
        )
    return BaselineResult.of(
        fit,
        config.classifier.c_grid,
        train_segments=len(features["train"]),
        n_mfcc=coefficients(spectrogram, config.features),
        mel_bands=mel_bands(spectrogram, config.features),
        n_features=features["train"].x.shape[1],
        features_s=round(features_s, 2),
    )


def cached_baseline(shards: str, config: BaselineConfig = DEFAULT) -> BaselineResult | None:
    """The baseline cached beside ``shards`` for their present contents, or None."""
    return read_cached(shards, cache_key(read_manifest(shards), config))


def shard_baseline(
    shards: str,
    config: BaselineConfig = DEFAULT,
    recompute: bool = False,
    splits: Mapping | None = None,
    warn: Callable[[str], None] = print,
) -> tuple[BaselineResult, bool]:
    """The baseline of ``shards`` and whether it came from the cache: the cached one unless
    ``recompute``, else computed and cached. A cache that cannot be written is ``warn``-ed
    about in one line; the result is returned all the same."""
    key = cache_key(read_manifest(shards), config)
    if not recompute:
        cached = read_cached(shards, key)
        if cached is not None:
            return cached, True
    result = compute_baseline(shards, config, splits)
    try:
        write_cached(shards, key, result)
    except OSError as exc:
        warn(f"warning: baseline not cached at {cache_path(shards)} ({exc})")
    return result, False


def baseline_or_warning(
    shards: str, splits: Mapping | None = None, say: Callable[[str], None] = print
) -> BaselineResult | None:
    """:func:`shard_baseline` for a search: its result and one line saying it, or None and one
    warning line. The baseline is a comparison; no failure of it may fail the search."""
    try:
        result, reused = shard_baseline(shards, splits=splits, warn=say)
    except Exception as exc:  # anything, said in one line: the search's results come first
        say(f"warning: no classical baseline for {shards}: {type(exc).__name__}: {exc}")
        return None
    how = "cached" if reused else f"computed in {result.features_s + result.fit_s:.1f} s"
    say(
        f"classical baseline ({result.label}): test track accuracy "
        f"{result.test_track_acc:.3f}, segment {result.test_acc:.3f} ({how})"
    )
    return result
