"""The classical baseline's features: MFCC and spectral-centroid statistics of each segment,
computed from the shards' dB spectrograms (never from the audio again). Pure numpy / scipy.

* log-power mel spectrogram (dB): a ``mel`` shard already is one; an ``stft`` shard holds
  ``20 * log10(max(|X|, amin))``, so ``10 ** (dB / 10)`` is the power ``|X|**2``, which goes
  through librosa's mel filterbank (:func:`raysearch.data.spectrogram.mel_filters`) and back to
  dB as the mel shards do (``10 * log10(max(M @ |X|**2, amin**2))``, no ``top_db`` clipping).
* MFCC: the type-2 orthonormal DCT over the mel bands, the first ``n_mfcc`` coefficients:
  exactly ``librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)``.
* spectral centroid: the amplitude-weighted mean frequency of each frame, amplitude
  ``10 ** (dB / 20)`` (``|X|`` for STFT bins; the square root of the band power for mel bands,
  at the bands' centre frequencies): ``librosa.feature.spectral_centroid(S=amplitude, freq=...)``.
* per segment, over its frames: the mean and standard deviation of each MFCC and of the
  centroid, ``2 * n_mfcc + 2`` numbers (:func:`segment_features`).

Why these: MFCC statistics and a linear model are the classical GTZAN baseline (docs/accuracy.md).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import librosa
import numpy as np
import scipy.fft

from raysearch.data.spectrogram import SpectrogramConfig, mel_filters
from raysearch.errors import UserError

CHUNK = 64  # segments converted at once: 17 MB of float32 for 513-bin STFT segments


class FeatureConfigError(UserError):
    """A baseline feature setting is unusable; the message names it."""


@dataclass(frozen=True)
class FeatureConfig:
    """What the baseline computes from each segment."""

    n_mfcc: int = 20  # librosa's default and the usual count in GTZAN MFCC baselines
    n_mels: int = 128  # mel bands made from STFT shards (librosa's default); mel shards keep theirs

    def __post_init__(self) -> None:
        for name in ("n_mfcc", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FeatureConfigError(f"{name} must be an integer >= 1, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def mel_bands(spectrogram: SpectrogramConfig, config: FeatureConfig) -> int:
    """Mel bands the MFCCs are taken over: the shard's own, or ``config.n_mels`` for STFT."""
    return spectrogram.n_mels if spectrogram.features == "mel" else config.n_mels


def coefficients(spectrogram: SpectrogramConfig, config: FeatureConfig) -> int:
    """MFCCs kept: ``n_mfcc``, or every band when there are fewer bands."""
    return min(config.n_mfcc, mel_bands(spectrogram, config))


def feature_names(spectrogram: SpectrogramConfig, config: FeatureConfig) -> list[str]:
    """The columns of :func:`segment_features`, in order."""
    n = coefficients(spectrogram, config)
    return (
        [f"mfcc{i}_mean" for i in range(n)]
        + [f"mfcc{i}_std" for i in range(n)]
        + ["centroid_mean", "centroid_std"]
    )


def log_mel_db(
    segments_db: np.ndarray, spectrogram: SpectrogramConfig, config: FeatureConfig
) -> np.ndarray:
    """Log-power mel spectrogram in dB of shard segments: (N, F, T) → (N, M, T) float32."""
    if spectrogram.features == "mel":
        return np.asarray(segments_db, dtype=np.float32)
    power = from_db(segments_db, 10.0)  # |X|**2, (N, F, T)
    filters = mel_filters(spectrogram.sample_rate, spectrogram.n_fft, config.n_mels)  # (M, F)
    mel = np.matmul(filters, power)  # (N, M, T)
    return np.float32(10.0) * np.log10(np.maximum(mel, np.float32(spectrogram.amin**2)))


def from_db(segments_db: np.ndarray, scale: float) -> np.ndarray:
    """``10 ** (dB / scale)`` in float32: power for ``scale`` 10, amplitude for 20.

    float16 shards (the default) go through a table of the 65,536 float16 values: the same
    numbers as computing from each value, at the cost of an indexed read instead of an
    exponential (a third of the features' time on 513-bin segments).
    """
    segments_db = np.asarray(segments_db)
    if segments_db.dtype == np.float16:
        return _from_db_table(float(scale))[segments_db.view(np.uint16)]
    return np.power(np.float32(10.0), segments_db.astype(np.float32) / np.float32(scale))


@functools.lru_cache(maxsize=2)
def _from_db_table(scale: float) -> np.ndarray:
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN codes: never in shards
        table = np.power(np.float32(10.0), values.astype(np.float32) / np.float32(scale))
    table.setflags(write=False)
    return table


def mfcc(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """The first ``n_mfcc`` type-2 orthonormal DCT coefficients over the bands (axis -2):
    (N, M, T) → (N, n_mfcc, T); librosa's ``mfcc(S=log_mel)``."""
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-2)[..., :n_mfcc, :]


def bin_frequencies(spectrogram: SpectrogramConfig) -> np.ndarray:
    """Centre frequency in Hz of each row of a shard segment: STFT bins or mel bands (F,)."""
    if spectrogram.features == "mel":
        # librosa.filters.mel's band i peaks at the (i + 1)-th of n_mels + 2 mel-spaced points
        edges = librosa.mel_frequencies(
            spectrogram.n_mels + 2, fmin=0.0, fmax=spectrogram.sample_rate / 2
        )
        return edges[1:-1]
    return librosa.fft_frequencies(sr=spectrogram.sample_rate, n_fft=spectrogram.n_fft)


def spectral_centroid(segments_db: np.ndarray, spectrogram: SpectrogramConfig) -> np.ndarray:
    """Amplitude-weighted mean frequency in Hz of every frame: (N, F, T) → (N, T) float32."""
    amplitude = from_db(segments_db, 20.0)  # (N, F, T)
    freq = bin_frequencies(spectrogram).astype(np.float32)
    total = amplitude.sum(axis=-2)  # (N, T); the -100 dB floor keeps it above zero
    return np.matmul(freq, amplitude) / total


def segment_features(
    segments_db: np.ndarray, spectrogram: SpectrogramConfig, config: FeatureConfig
) -> np.ndarray:
    """Per segment, the mean and standard deviation over frames of each MFCC and of the
    spectral centroid (:func:`feature_names`): (N, F, T) dB → (N, 2 * n_mfcc + 2) float64.

    Converts ``CHUNK`` segments at a time, so a split of GTZAN's size never exists in float32.
    """
    n = coefficients(spectrogram, config)
    out = np.empty((len(segments_db), 2 * n + 2), dtype=np.float64)
    for start in range(0, len(segments_db), CHUNK):
        chunk = segments_db[start : start + CHUNK]
        coeffs = mfcc(log_mel_db(chunk, spectrogram, config), n)  # (B, n, T)
        centroid = spectral_centroid(chunk, spectrogram)  # (B, T)
        rows = slice(start, start + len(chunk))
        out[rows, :n] = coeffs.mean(axis=-1)
        out[rows, n : 2 * n] = coeffs.std(axis=-1)
        out[rows, 2 * n] = centroid.mean(axis=-1)
        out[rows, 2 * n + 1] = centroid.std(axis=-1)
    return out
