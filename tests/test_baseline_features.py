"""The baseline's features from real shard spectrograms (the pipeline's own segment_clip on a
waveform), against librosa's own mfcc and spectral_centroid of the same spectrogram."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from raysearch.baseline.features import (
    CHUNK,
    FeatureConfig,
    FeatureConfigError,
    bin_frequencies,
    feature_names,
    log_mel_db,
    mfcc,
    segment_features,
    spectral_centroid,
)
from raysearch.data.spectrogram import SpectrogramConfig, segment_clip
from raysearch.errors import UserError
from tests.conftest import tone

STFT = SpectrogramConfig()
MEL = SpectrogramConfig(features="mel", n_mels=32)


def clip(seconds: float = 6.0) -> np.ndarray:
    """Two tones over noise: a spectrum with structure in every band."""
    rng = np.random.default_rng(1)
    y = tone(seconds, freq=440.0) + tone(seconds, freq=3100.0, seed=2)
    return y + 0.05 * rng.standard_normal(len(y)).astype(np.float32)


def librosa_mfcc(db: np.ndarray, spectrogram: SpectrogramConfig, n_mels: int) -> np.ndarray:
    """librosa's mfcc of one shard segment (F, T) in dB, through librosa's own functions."""
    db = db.astype(np.float32)
    if spectrogram.features == "mel":
        log_mel = db
    else:
        mel = librosa.feature.melspectrogram(
            S=10 ** (db / 10), sr=spectrogram.sample_rate, n_fft=spectrogram.n_fft, n_mels=n_mels
        )
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=spectrogram.amin**2, top_db=None)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=20)


@pytest.mark.parametrize("spectrogram", [STFT, MEL], ids=["stft", "mel"])
def test_mfccs_equal_librosa_mfcc_of_the_same_spectrogram(spectrogram):
    segments = segment_clip(clip(), spectrogram)  # (3, F, 129) float16, as in the shards
    ours = mfcc(log_mel_db(segments, spectrogram, FeatureConfig()), 20)
    assert ours.shape == (3, 20, 129)
    for k in range(3):
        expected = librosa_mfcc(segments[k], spectrogram, n_mels=128)
        np.testing.assert_allclose(ours[k], expected, rtol=1e-5, atol=1e-3)


def test_spectral_centroid_equals_librosa_on_stft_bins_and_mel_bands():
    for spectrogram in (STFT, MEL):
        segments = segment_clip(clip(), spectrogram)
        ours = spectral_centroid(segments, spectrogram)
        for k in range(len(segments)):
            amplitude = 10 ** (segments[k].astype(np.float32) / 20)
            expected = librosa.feature.spectral_centroid(
                S=amplitude, freq=bin_frequencies(spectrogram)
            )[0]
            np.testing.assert_allclose(ours[k], expected, rtol=1e-4)
    # the two tones (440 Hz, 3.1 kHz, equal amplitude) pull the centroid between them
    assert 440 < float(ours.mean()) < 3100


def test_stft_shards_give_the_mfccs_of_mel_shards_of_the_same_audio():
    """The STFT route (dB -> power -> mel filterbank -> dB) lands where a mel shard starts:
    only float16 storage separates them. A wrong power conversion (say 10 ** (dB / 20)) would
    not."""
    y = clip()
    from_stft = segment_features(segment_clip(y, STFT), STFT, FeatureConfig(n_mels=32))
    from_mel = segment_features(segment_clip(y, MEL), MEL, FeatureConfig())
    n = 20
    np.testing.assert_allclose(from_stft[:, :n], from_mel[:, :n], atol=0.01)  # MFCC means
    np.testing.assert_allclose(from_stft[:, n : 2 * n], from_mel[:, n : 2 * n], atol=0.01)


def test_segment_features_are_the_frame_statistics_in_feature_names_order():
    spectrogram = MEL
    segments = segment_clip(clip(30.0), spectrogram)  # 19 segments
    features = segment_features(segments, spectrogram, FeatureConfig(n_mfcc=13))
    names = feature_names(spectrogram, FeatureConfig(n_mfcc=13))
    assert features.shape == (19, 2 * 13 + 2) and len(names) == features.shape[1]
    coeffs = librosa.feature.mfcc(S=segments[7].astype(np.float32), n_mfcc=13)
    centroid = spectral_centroid(segments[7:8], spectrogram)[0]
    row = dict(zip(names, features[7], strict=True))
    assert row["mfcc0_mean"] == pytest.approx(coeffs[0].mean(), rel=1e-5)
    assert row["mfcc12_std"] == pytest.approx(coeffs[12].std(), rel=1e-4)
    assert row["centroid_mean"] == pytest.approx(centroid.mean(), rel=1e-5)
    assert row["centroid_std"] == pytest.approx(centroid.std(), rel=1e-4)


def test_features_do_not_depend_on_how_segments_are_chunked():
    segments = np.concatenate([segment_clip(clip(30.0), MEL)] * 15)  # 285 > CHUNK segments
    assert len(segments) > CHUNK
    together = segment_features(segments, MEL, FeatureConfig())
    alone = np.concatenate([segment_features(s[None], MEL, FeatureConfig()) for s in segments])
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def test_fewer_mel_bands_than_coefficients_keep_every_band():
    spectrogram = SpectrogramConfig(features="mel", n_mels=12)
    features = segment_features(segment_clip(clip(), spectrogram), spectrogram, FeatureConfig())
    assert features.shape == (3, 2 * 12 + 2)


@pytest.mark.parametrize("field", ["n_mfcc", "n_mels"])
def test_a_bad_setting_is_a_user_error_naming_it(field):
    with pytest.raises(FeatureConfigError, match=f"{field} must be an integer >= 1"):
        FeatureConfig(**{field: 0})
    assert issubclass(FeatureConfigError, UserError)
