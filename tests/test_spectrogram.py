"""Frame arithmetic, segment counts and shapes, short clips, decoding and conversion; log-mel."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from raysearch.data.spectrogram import (
    SpectrogramConfig,
    expected_frames,
    load_audio,
    mel_db,
    num_segments,
    power_db,
    segment_clip,
    segment_clip_with_sums,
)
from tests.conftest import tone

CONFIG = SpectrogramConfig()
RATE = 22_050


def test_report_settings_give_513_by_129_segments():
    assert CONFIG.segment_samples == 66_150
    assert CONFIG.step_samples == 33_075
    assert CONFIG.shape == (513, 129)


def test_thirty_second_clip_gives_19_segments_of_the_right_shape():
    y = tone(30.0)
    segments = segment_clip(y, CONFIG)
    assert segments.shape == (19, 513, 129)
    assert segments.dtype == np.float16
    assert expected_frames(len(y), CONFIG) == 1292


def test_29_95_second_clip_is_padded_to_19_segments():
    y = tone(29.95)
    assert len(y) == 660_398
    assert num_segments(len(y), CONFIG) == 19
    segments = segment_clip(y, CONFIG)
    assert segments.shape == (19, 513, 129)
    # the padded tail is silence: the last frames of the last segment drop to the dB floor
    assert float(segments[-1, :, -1].max()) < float(segments[-1, :, 0].max())


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(2.85, 0), (2.95, 1), (3.0, 1), (4.5, 2), (10.0, 5), (29.8, 18), (30.0, 19), (45.0, 19)],
)
def test_segment_counts(seconds, expected):
    assert num_segments(round(seconds * RATE), CONFIG) == expected


def test_segment_start_frames():
    assert [CONFIG.start_frame(k) for k in (0, 1, 2, 3, 18)] == [0, 64, 129, 193, 1162]


def test_segment_k_is_the_slice_of_the_clip_spectrogram_at_its_start_frame():
    y = tone(30.0) * np.linspace(0.1, 1.0, round(30.0 * RATE), dtype=np.float32)
    segments = segment_clip(y, CONFIG)
    whole = power_db(y, CONFIG)
    for k in (0, 1, 7, 18):
        start = CONFIG.start_frame(k)
        np.testing.assert_allclose(
            segments[k].astype(np.float32), whole[:, start : start + 129], atol=0.05
        )


def test_segment_k_covers_the_audio_from_k_times_1_5_seconds():
    # a click at 4.5 s (segment 3 starts there) must appear near frame 0 of segment 3
    y = np.zeros(round(30.0 * RATE), dtype=np.float32)
    y[round(4.5 * RATE) + 600 : round(4.5 * RATE) + 700] = 1.0
    segments = segment_clip(y, CONFIG).astype(np.float32)
    energy = segments[3].max(axis=0)
    assert int(np.argmax(energy)) <= 2


def test_decibels_use_an_absolute_reference():
    loud, quiet = tone(3.0), tone(3.0) * 0.1
    difference = power_db(loud, CONFIG).max() - power_db(quiet, CONFIG).max()
    assert difference == pytest.approx(20.0, abs=0.5)
    assert power_db(np.zeros(66_150, dtype=np.float32), CONFIG).min() == pytest.approx(-100.0)


def _wav_bytes(y: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_stereo_44k_is_downmixed_and_resampled():
    y, info = load_audio(_wav_bytes(tone(3.0, rate=44_100, channels=2), 44_100), RATE)
    assert info == {"channels": 2, "source_rate": 44_100}
    assert len(y) == pytest.approx(3.0 * RATE, abs=2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "empty file"), (b"this is not audio\n" * 20, "cannot decode audio")],
)
def test_unreadable_input_raises_a_short_reason(payload, message):
    with pytest.raises(ValueError, match=message):
        load_audio(payload, RATE)


def test_shorter_than_one_segment_gives_no_segment():
    assert segment_clip(tone(2.0), CONFIG).shape == (0, 513, 129)


@pytest.mark.parametrize("seconds", [30.0, 29.95, 7.3])
def test_segment_sums_count_overlapping_frames_once_per_segment(seconds):
    y = tone(seconds, freq=330.0) * np.linspace(0.1, 1.0, round(seconds * RATE), dtype=np.float32)
    segments, sums = segment_clip_with_sums(y, CONFIG)
    assert np.array_equal(segments, segment_clip(y, CONFIG))
    # the reference: every value of every segment, in float64, before the float16 cast
    exact = segment_clip(y, SpectrogramConfig(dtype="float32")).astype(np.float64)
    assert sums.count == exact.size
    assert sums.total == pytest.approx(exact.sum(), rel=1e-6)
    assert sums.total_sq == pytest.approx((exact**2).sum(), rel=1e-6)


def test_no_segment_no_sums():
    segments, sums = segment_clip_with_sums(tone(2.0), CONFIG)
    assert segments.shape == (0, 513, 129) and sums.count == 0 and sums.total == 0.0


def test_counted_segments_alone_make_the_sums():
    y = tone(7.5, freq=330.0) * np.linspace(0.1, 1.0, round(7.5 * RATE), dtype=np.float32)
    counted = [True, False, True, False]  # 7.5 s gives 4 segments
    segments, sums = segment_clip_with_sums(y, CONFIG, counted=counted)
    exact = segment_clip(y, SpectrogramConfig(dtype="float32"))[[0, 2]].astype(np.float64)
    assert len(segments) == 4
    assert sums.count == exact.size
    assert sums.total == pytest.approx(exact.sum(), rel=1e-6)
    assert sums.total_sq == pytest.approx((exact**2).sum(), rel=1e-6)
    assert segment_clip_with_sums(y, CONFIG, counted=[False] * 4)[1].count == 0


def test_stft_default_is_the_report_formula_bit_for_bit():
    # the formula the shards were made with before log-mel existed, written out in full
    y = tone(30.0, freq=523.0) * np.linspace(0.05, 1.0, round(30.0 * RATE), dtype=np.float32)
    stft = librosa.stft(y, n_fft=1024, hop_length=512, window="hann", center=True)
    previous = (20.0 * np.log10(np.maximum(np.abs(stft), 1e-5))).astype(np.float32)
    segments = segment_clip(y, SpectrogramConfig(features="stft"))
    assert CONFIG.features == "stft"
    for k in (0, 5, 18):
        start = CONFIG.start_frame(k)
        expected = previous[:, start : start + 129].astype(np.float16)
        assert np.array_equal(segments[k], expected)


MEL = SpectrogramConfig(features="mel", n_mels=128)


def test_mel_segments_are_128_by_129():
    assert MEL.shape == (128, 129)
    assert SpectrogramConfig(features="mel", n_mels=40).shape == (40, 129)
    segments = segment_clip(tone(30.0), MEL)
    assert segments.shape == (19, 128, 129) and segments.dtype == np.float16
    assert segment_clip(tone(2.0), MEL).shape == (0, 128, 129)


@pytest.mark.parametrize("freq", [220.0, 1000.0, 4000.0])
def test_mel_segment_of_a_pure_tone_peaks_in_the_band_of_that_tone(freq):
    segments = segment_clip(tone(3.0, freq=freq), MEL).astype(np.float32)
    centres = librosa.mel_frequencies(n_mels=128 + 2, fmin=0.0, fmax=RATE / 2)[1:-1]
    peak = int(np.argmax(segments[0].mean(axis=1)))
    # the tone falls between two band centres: its band is one of the two nearest
    assert peak in np.argsort(np.abs(centres - freq))[:2]
    assert segments[0, peak].mean() > segments[0].mean() + 30.0


def test_mel_db_is_power_to_db_with_an_absolute_reference_and_the_amin_floor():
    y = tone(3.0)
    power = np.abs(librosa.stft(y, n_fft=1024, hop_length=512, center=True)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=RATE, n_mels=128)
    expected = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    np.testing.assert_allclose(mel_db(y, MEL), expected, atol=1e-3)
    silence = mel_db(np.zeros(66_150, dtype=np.float32), MEL)
    assert silence.min() == pytest.approx(-100.0) and silence.max() == pytest.approx(-100.0)
    loud, quiet = mel_db(y, MEL).max(), mel_db(y * 0.1, MEL).max()
    assert loud - quiet == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"features": "cqt"}, "features must be one of stft, mel, got 'cqt'"),
        ({"features": "mel", "n_mels": 0}, "n_mels must be an integer >= 1, got 0"),
        ({"n_mels": -3}, "n_mels must be an integer >= 1"),
        ({"features": "mel", "n_mels": 400}, "n_mels=400 leaves .* mel band"),
    ],
)
def test_bad_feature_settings_are_refused_with_the_option_named(settings, message):
    with pytest.raises(ValueError, match=message):
        SpectrogramConfig(**settings)
