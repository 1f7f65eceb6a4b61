"""Audio → dB spectrogram (STFT or log-mel) → overlapping 3 s segments (report §2.2, §2.3).

Pure numpy / librosa, no Ray: the Ray Data pipeline (`raysearch.data.pipeline`) and the
predictor (`raysearch.inference`) both call these functions, so training and prediction see
the same numbers.

Frame arithmetic (defaults: 22,050 Hz, 1024-sample Hann window, hop 512, centred frames):

* segment length  = 3.0 s  = 66,150 samples; segment step = 1.5 s = 33,075 samples
* frames per segment ``L = floor(66,150 / 512) = 129``; frequency bins ``F = 1 + 1024/2 = 513``
* segment ``k`` starts at sample ``k * 33,075`` and its first frame is
  ``start_frame(k) = floor(k * 33,075 / 512)``: 0, 64, 129, 193, ..., 1162 for k = 18
* a 30.0 s clip (661,500 samples) has ``1 + floor(661,500 / 512) = 1,292`` centred frames and
  19 segments; the last one covers frames 1162..1290.

The clip's STFT is computed once and then sliced (not one STFT per segment): that is what the
report describes, and it costs half the FFT work of transforming 19 overlapping windows.

Two kinds of features (``SpectrogramConfig.features``), both from the same centred STFT:

* ``stft`` (default, the report's): magnitude in dB, ``20 * log10(max(|X|, amin))`` with an
  absolute reference ``ref = 1.0`` and ``amin = 1e-5`` (floor at -100 dB), no ``top_db``
  clipping; F = 513 bins. An absolute reference keeps the loudness differences between clips
  (``ref=np.max`` would normalise each clip to 0 dB peak); a full-scale sine peaks at about
  +48 dB with a 1024 Hann window.
* ``mel``: librosa's mel filterbank (``librosa.filters.mel(sr=22050, n_fft=1024,
  n_mels=n_mels)``: Slaney mel scale, 0 Hz to Nyquist, Slaney area normalisation) applied to
  the power spectrogram ``|X|**2``, then ``10 * log10(max(M @ |X|**2, amin**2))`` with the same
  absolute reference ``ref = 1.0``. Power takes ``amin**2`` so the floor is the same -100 dB as
  the magnitude floor of ``stft`` (this is ``librosa.power_to_db(ref=1.0, amin=amin**2,
  top_db=None)``); F = ``n_mels`` (default 128). The area normalisation divides each band by
  its width in Hz, so a full-scale sine at 1 kHz peaks at about +33 dB in its mel band (+47 dB
  in its STFT bin). A value of ``n_mels`` that leaves some band without an STFT bin (309 or
  more at these settings) is refused: that band would be -100 dB everywhere.

Segments are cut the same way for both; only F changes: a segment is (F, 129).

Short clips: GTZAN clips are not all 30.0 s (several are 29.9x s). A clip gets
``n = 1 + floor((samples + tolerance - 66,150) / 33,075)`` segments (at most ``max_segments``),
with ``tolerance = 0.1 s``: the waveform is zero-padded at the end by at most 0.1 s so that the
last segment is whole. A 29.95 s clip therefore gives 19 segments (padded by 0.05 s), a 10 s
clip gives 5, and a clip under 2.9 s gives none (the pipeline skips and reports it). Segments
never shift: segment k always starts at ``k * 1.5 s`` of the original audio.
"""

from __future__ import annotations

import functools
import io
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO

import librosa
import numpy as np
import soundfile as sf

from raysearch.errors import UserError


class SpectrogramConfigError(UserError):
    """A spectrogram setting is unusable; the message names it."""


@dataclass(frozen=True)
class SpectrogramConfig:
    """Spectrogram and segmentation settings; the defaults are the report's."""

    sample_rate: int = 22_050  # GTZAN's rate; other rates are resampled to it
    n_fft: int = 1024  # window size (report §2.2)
    hop_length: int = 512  # 1024 - 512 samples of overlap between windows (report §2.2)
    segment_seconds: float = 3.0  # report §2.3
    step_seconds: float = 1.5  # segments overlap by 3.0 - 1.5 = 1.5 s (report §2.3)
    max_segments: int = 19  # a 30 s clip gives 19 segments; longer clips are cut there
    pad_tolerance_seconds: float = 0.1  # at most this much silence is appended to end a segment
    amin: float = 1e-5  # magnitude floor: -100 dB (amin**2 on power for mel)
    dtype: str = "float16"  # storage type of the shards; dB values need ~0.03 dB resolution
    features: str = "stft"  # stft: the report's 513 magnitude bins; mel: n_mels log-mel bands
    n_mels: int = 128  # mel bands (features="mel" only); librosa's and most taggers' default

    def __post_init__(self) -> None:
        if self.step_seconds <= 0 or self.segment_seconds <= 0:
            raise SpectrogramConfigError("segment_seconds and step_seconds must be positive")
        if self.dtype not in ("float16", "float32"):
            raise SpectrogramConfigError(f"dtype must be float16 or float32, got {self.dtype!r}")
        if self.features not in FEATURES:
            raise SpectrogramConfigError(
                f"features must be one of {', '.join(FEATURES)}, got {self.features!r}"
            )
        if isinstance(self.n_mels, bool) or not isinstance(self.n_mels, int) or self.n_mels < 1:
            raise SpectrogramConfigError(f"n_mels must be an integer >= 1, got {self.n_mels!r}")
        if self.features == "mel":
            filters = mel_filters(self.sample_rate, self.n_fft, self.n_mels)
            empty = int((filters.max(axis=1) == 0).sum())
            if empty:
                raise SpectrogramConfigError(
                    f"n_mels={self.n_mels} leaves {empty} mel band(s) without an STFT bin "
                    f"at n_fft={self.n_fft}; use fewer bands"
                )

    @property
    def segment_samples(self) -> int:
        return round(self.segment_seconds * self.sample_rate)

    @property
    def step_samples(self) -> int:
        return round(self.step_seconds * self.sample_rate)

    @property
    def n_bins(self) -> int:
        """Frequency rows of a segment: the STFT's bins (513) or the mel bands."""
        return self.n_mels if self.features == "mel" else self.n_fft // 2 + 1

    @property
    def segment_frames(self) -> int:
        return self.segment_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one segment: (frequency bins or mel bands, frames)."""
        return (self.n_bins, self.segment_frames)

    def start_frame(self, k: int) -> int:
        """First STFT frame of segment ``k``."""
        return (k * self.step_samples) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def num_segments(n_samples: int, config: SpectrogramConfig, max_segments: int | None = None) -> int:
    """How many whole segments a clip of ``n_samples`` gives (0 if it is too short)."""
    limit = config.max_segments if max_segments is None else max_segments
    tolerance = round(config.pad_tolerance_seconds * config.sample_rate)
    usable = n_samples + tolerance - config.segment_samples
    if usable < 0:
        return 0
    n = 1 + usable // config.step_samples
    return int(n if limit <= 0 else min(n, limit))


def load_audio(source: str | BinaryIO | bytes, sample_rate: int) -> tuple[np.ndarray, dict]:
    """Decode an audio file to mono float32 at ``sample_rate``.

    Returns the waveform and a dict of what was converted (``channels``, ``source_rate``), so
    the pipeline can report stereo or 44.1 kHz inputs. Raises ``ValueError`` with a short reason
    for empty, non-audio or undecodable input.
    """
    if isinstance(source, bytes):
        if not source:
            raise ValueError("empty file")
        source = io.BytesIO(source)
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's errors are RuntimeError / LibsndfileError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # libsndfile says "Error opening <_io.BytesIO object at 0x...>: Format not recognised."
        reason = re.sub(r"^Error opening <[^>]*>: ", "", reason)
        raise ValueError(f"cannot decode audio: {reason}") from exc
    if data.shape[0] == 0:
        raise ValueError("no audio samples")
    channels = data.shape[1]
    y = data.mean(axis=1) if channels > 1 else data[:, 0]
    if rate != sample_rate:
        y = librosa.resample(y, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    if not np.all(np.isfinite(y)):
        raise ValueError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(y, dtype=np.float32), {"channels": channels, "source_rate": rate}


def _stft(y: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    return librosa.stft(
        y, n_fft=config.n_fft, hop_length=config.hop_length, window="hann", center=True
    )


def power_db(y: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """Magnitude STFT in dB of a whole waveform: (n_fft/2 + 1, frames), float32."""
    magnitude = np.abs(_stft(y, config))
    return (20.0 * np.log10(np.maximum(magnitude, config.amin))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filterbank (n_mels, n_fft/2 + 1), float32; computed once per process.

    librosa's warning about empty bands is silenced here: :class:`SpectrogramConfig` checks
    for them and refuses the setting with a message that names ``n_mels``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    filters.setflags(write=False)  # shared by every caller of the cache
    return filters


def mel_db(y: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """Log-mel spectrogram in dB of a whole waveform: (n_mels, frames), float32."""
    power = np.square(np.abs(_stft(y, config)))  # (n_fft/2 + 1, frames)
    mel = mel_filters(config.sample_rate, config.n_fft, config.n_mels) @ power  # (n_mels, frames)
    return (10.0 * np.log10(np.maximum(mel, config.amin**2))).astype(np.float32)


# features name → dB spectrogram of a whole waveform, (F, frames); a new kind is one entry here
FEATURES: dict[str, Callable[[np.ndarray, SpectrogramConfig], np.ndarray]] = {
    "stft": power_db,
    "mel": mel_db,
}


def spectrogram_db(y: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """The dB spectrogram ``config.features`` names: (F, frames), float32, F = config.n_bins."""
    return FEATURES[config.features](y, config)


def segment_clip(
    y: np.ndarray, config: SpectrogramConfig, max_segments: int | None = None
) -> np.ndarray:
    """Cut a waveform into its dB spectrogram segments: (n, F, L) in ``config.dtype``.

    ``n`` follows :func:`num_segments`; the waveform is cut to the samples the segments use
    (or zero-padded by at most the tolerance) before one STFT (and, for ``mel``, one filterbank
    product), then sliced every 1.5 s. The shard pipeline and the predictor both come here.
    """
    return _segments(y, config, max_segments, counted=None, sums=False)[0]


@dataclass(frozen=True)
class SegmentSums:
    """Sum, sum of squares and count of the dB values of a clip's segments (for mean / std)."""

    total: float = 0.0
    total_sq: float = 0.0
    count: int = 0


def segment_clip_with_sums(
    y: np.ndarray,
    config: SpectrogramConfig,
    max_segments: int | None = None,
    counted: Sequence[bool] | None = None,
) -> tuple[np.ndarray, SegmentSums]:
    """:func:`segment_clip` plus the sums of the segments' values, for normalisation stats.

    The sums run over every value of every segment (frames in two overlapping segments count
    twice), computed from the clip's float32 spectrogram weighted by how many segments cover
    each frame: a matrix-vector product instead of a pass over the 19 copies. They are the
    float32 values before the cast to ``config.dtype`` (float16 rounding moves the mean by
    about 1e-4 dB). ``counted[k]`` False leaves segment ``k`` out of the sums (a segment-level
    split sums only the train segments of a clip); default: every segment counts.
    """
    return _segments(y, config, max_segments, counted=counted, sums=True)


def _segments(
    y: np.ndarray,
    config: SpectrogramConfig,
    max_segments: int | None,
    counted: Sequence[bool] | None,
    sums: bool,
) -> tuple[np.ndarray, SegmentSums]:
    n = num_segments(len(y), config, max_segments)
    if n == 0:
        return np.zeros((0, *config.shape), dtype=config.dtype), SegmentSums()
    needed = (n - 1) * config.step_samples + config.segment_samples
    if len(y) < needed:
        y = np.pad(y, (0, needed - len(y)))
    spec = spectrogram_db(y[:needed], config)  # (F, 1 + needed // hop)
    frames = config.segment_frames
    starts = [config.start_frame(k) for k in range(n)]
    assert starts[-1] + frames <= spec.shape[1], "segment runs past the spectrogram"
    out = np.empty((n, *config.shape), dtype=config.dtype)
    for k, start in enumerate(starts):  # one pass: slice and cast straight into the output
        out[k] = spec[:, start : start + frames]
    summed = [start for k, start in enumerate(starts) if counted is None or counted[k]]
    if not sums or not summed:
        return out, SegmentSums()
    cover = np.zeros(spec.shape[1], dtype=np.float32)  # summed segments covering each frame
    for start in summed:
        cover[start : start + frames] += 1.0
    per_bin = spec @ cover  # (F,): sum over frames, weighted by coverage
    per_bin_sq = np.square(spec) @ cover
    return out, SegmentSums(
        total=float(per_bin.sum(dtype=np.float64)),
        total_sq=float(per_bin_sq.sum(dtype=np.float64)),
        count=len(summed) * spec.shape[0] * frames,
    )


def expected_frames(n_samples: int, config: SpectrogramConfig) -> int:
    """Number of centred STFT frames of a waveform of ``n_samples``."""
    return 1 + n_samples // config.hop_length


def clip_seconds(n_segments: int, config: SpectrogramConfig) -> float:
    """Audio span covered by ``n_segments`` segments, in seconds."""
    if n_segments == 0:
        return 0.0
    return ((n_segments - 1) * config.step_samples + config.segment_samples) / config.sample_rate


__all__ = [
    "FEATURES",
    "SpectrogramConfig",
    "clip_seconds",
    "expected_frames",
    "load_audio",
    "mel_db",
    "mel_filters",
    "num_segments",
    "power_db",
    "SegmentSums",
    "segment_clip",
    "segment_clip_with_sums",
    "spectrogram_db",
]
