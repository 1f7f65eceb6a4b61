"""Shared fixtures: one local Ray instance per test session, and small audio writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
GTZAN_SAMPLE = SHARED / "gtzan-sample"


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance with 2 CPUs, shared by every test that needs Ray."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
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
