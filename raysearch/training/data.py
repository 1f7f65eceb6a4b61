"""The train / val / test splits of a shard folder as numpy arrays (pyarrow only, no Ray).

The driver of a search reads the Parquet shards once; Ray's object store then shares the
arrays with every trial (zero-copy for trials on the driver's node, one transfer per node
otherwise), so no trial re-reads Parquet and no trial needs a Ray Data executor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysearch.data.discover import DataError
from raysearch.data.pipeline import read_manifest, split_path
from raysearch.data.split import SPLITS


@dataclass(frozen=True)
class SplitArrays:
    """One split: ``spectrogram`` (N, F, T) float16 dB, ``label`` (N,) int64, ``track_id`` (N,)."""

    spectrogram: np.ndarray
    label: np.ndarray
    track_id: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


def read_split(shards: str, split: str, shape: tuple[int, int] | None = None) -> SplitArrays:
    """One split of a shard folder (path or URI)."""
    import pyarrow.parquet as pq

    from raysearch.storage import resolve

    shape = tuple(shape or read_manifest(shards)["shape"])
    filesystem, path = resolve(split_path(shards, split))
    table = pq.read_table(path, filesystem=filesystem, columns=["track_id", "label", "spectrogram"])
    return SplitArrays(
        spectrogram=spectrogram_values(table.column("spectrogram"), shape),
        label=table.column("label").to_numpy().astype(np.int64),
        track_id=np.asarray(table.column("track_id").to_pylist(), dtype=object),
    )


def spectrogram_values(column, shape: tuple[int, int]) -> np.ndarray:
    """A Parquet ``spectrogram`` column (pyarrow array or chunked array) as (N, F, T) float16."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.ExtensionArray):  # Ray's tensor type, when ray.data registered it
        column = column.storage
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(len(column), *shape), dtype=np.float16)


def load_splits(shards: str) -> dict[str, SplitArrays]:
    """Every split of a shard folder; a one-line error if one is empty."""
    manifest = read_manifest(shards)
    splits = {}
    for split in SPLITS:
        if manifest["counts"]["segments"].get(split, 0) == 0:
            raise DataError(
                f"{shards}: the {split} split is empty "
                f"({manifest['counts']['tracks']}); prepare more tracks"
            )
        splits[split] = read_split(shards, split, tuple(manifest["shape"]))
    return splits


def model_config_for(shards: str, **overrides):
    """A model config sized for the shards (input shape, classes, input standardisation)."""
    from raysearch.model import ModelConfig

    manifest = read_manifest(shards)
    stats = manifest.get("train_stats", {})
    return ModelConfig(
        input_shape=tuple(manifest["shape"]),
        n_classes=len(manifest["labels"]),
        input_mean=float(stats.get("mean", 0.0)),
        input_std=float(stats.get("std", 1.0)) or 1.0,
        **overrides,
    )


def sized_like(model_config, shards: str):
    """``model_config`` with the input shape, classes and standardisation of ``shards``."""
    return sized_as(model_config, model_config_for(shards))


def sized_as(model_config, sized):
    """``model_config`` with the input shape, classes and standardisation of ``sized`` (a model
    config from :func:`model_config_for`), without reading the manifest again."""
    import dataclasses

    return dataclasses.replace(
        model_config,
        input_shape=sized.input_shape,
        n_classes=sized.n_classes,
        input_mean=sized.input_mean,
        input_std=sized.input_std,
    )


def spectrogram_settings(shards: str) -> dict:
    """The SpectrogramConfig fields of the shards' manifest (a checkpoint carries them)."""
    from dataclasses import fields

    from raysearch.data.spectrogram import SpectrogramConfig

    recorded = read_manifest(shards).get("spectrogram", {})
    return {f.name: recorded[f.name] for f in fields(SpectrogramConfig) if f.name in recorded}
