"""Shared fixtures: one local Ray instance per test session, and small audio writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
GTZAN_SAMPLE = SHARED / "gtzan-sample"


def _start_local_ray():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, log_to_driver=False)
    return ray


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance with 2 CPUs, shared by the tests of one module.

    One module at a time: two Ray instances on one machine confuse Ray Train 2.60's
    placement-group cleaner (it finds the cluster by scanning local processes), and the
    multi-node test starts a cluster of its own.
    """
    ray = _start_local_ray()
    yield ray
    ray.shutdown()


def tone(
    seconds: float, rate: int = 22_050, freq: float = 440.0, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """A sine plus a little noise: (samples,) or (samples, channels) float32."""
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    y = y.astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def write_clip(
    path: Path,
    seconds: float,
    rate: int = 22_050,
    channels: int = 1,
    freq: float = 440.0,
    seed: int = 0,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate, freq, channels, seed), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Shards of a small synthetic mini-GTZAN: 10 clips of 6 s per genre (3 segments each)."""
    from raysearch.data import synth
    from raysearch.data.pipeline import prepare

    _start_local_ray()  # the modules that use these shards hold it (ray_session)

    root = synth.generate(
        tmp_path_factory.mktemp("synthetic"), clips_per_genre=10, duration=6.0, seed=0, workers=2
    )
    return prepare(str(root), str(tmp_path_factory.mktemp("shards") / "tiny")).out
