"""Tests of the synthetic mini-GTZAN generator (tiny clip counts and durations: seconds in all)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from raysearch.commands.synth import main as synth_main
from raysearch.data import GENRES, synth
from raysearch.data.synth import write as synth_write

CLIPS = 2
DURATION = 0.5


def _files(root: Path) -> dict[str, bytes]:
    audio = root / synth.AUDIO_DIR
    return {str(p.relative_to(audio)): p.read_bytes() for p in sorted(audio.rglob("*.wav"))}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "gtzan"
    assert synth.generate(out, clips_per_genre=CLIPS, duration=DURATION, seed=0) == out
    return out


def test_layout_and_names(tiny_set: Path) -> None:
    audio = tiny_set / "genres_original"
    assert sorted(p.name for p in audio.iterdir()) == sorted(GENRES)
    for genre in GENRES:
        names = sorted(p.name for p in (audio / genre).iterdir())
        assert names == [f"{genre}.{i:05d}.wav" for i in range(CLIPS)]
    assert synth.clip_path(tiny_set, "blues", 1) == audio / "blues" / "blues.00001.wav"
    # No temp files left behind by the atomic writes.
    assert not [p for p in tiny_set.rglob("*") if p.name.startswith(".")]


def test_manifest_records_parameters(tiny_set: Path) -> None:
    data = json.loads((tiny_set / "synthetic.json").read_text())
    assert data["synthetic"] is True and data["complete"] is True
    assert data["seed"] == 0
    assert data["clips_per_genre"] == CLIPS
    assert data["duration"] == DURATION
    assert data["sample_rate"] == synth.SAMPLE_RATE == 22_050
    assert data["version"] == synth_write.GENERATOR_VERSION
    assert data["generator"] == "raysearch.synth"  # what sets made before the layout recorded
    assert data["genres"] == list(GENRES)
    assert synth.matches(tiny_set, CLIPS, DURATION, 0)
    assert not synth.matches(tiny_set, CLIPS, DURATION, 1)
    assert not synth.matches(tiny_set, CLIPS + 1, DURATION, 0)


def test_files_decode_as_16_bit_mono(tiny_set: Path) -> None:
    for path in (tiny_set / "genres_original").rglob("*.wav"):
        info = sf.info(path)
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        assert info.samplerate == 22_050 and info.channels == 1
        assert info.frames == round(DURATION * 22_050)
        audio, _ = sf.read(path)
        assert np.abs(audio).max() > 0.05  # not silent


def test_synthesize_clip_range_and_determinism() -> None:
    x = synth.synthesize_clip("metal", 3, seed=7, duration=0.3)
    assert x.dtype == np.float32 and x.shape == (round(0.3 * synth.SAMPLE_RATE),)
    assert np.abs(x).max() <= 1.0
    assert np.array_equal(x, synth.synthesize_clip("metal", 3, seed=7, duration=0.3))
    assert not np.array_equal(x, synth.synthesize_clip("metal", 4, seed=7, duration=0.3))
    assert not np.array_equal(x, synth.synthesize_clip("rock", 3, seed=7, duration=0.3))
    with pytest.raises(ValueError):
        synth.synthesize_clip("polka", 0, seed=0, duration=0.3)


def test_same_seed_same_bytes_different_seed_different(tiny_set: Path, tmp_path: Path) -> None:
    again = synth.generate(tmp_path / "again", CLIPS, DURATION, seed=0, workers=2)
    other = synth.generate(tmp_path / "other", CLIPS, DURATION, seed=1)
    reference = _files(tiny_set)
    assert _files(again) == reference  # also: process pool output == serial output
    changed = _files(other)
    assert changed.keys() == reference.keys()
    assert all(changed[name] != reference[name] for name in reference)


def test_rerun_with_same_parameters_does_no_work(
    tiny_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _mtimes(tiny_set)

    def fail(job: object) -> None:
        raise AssertionError(f"unexpected synthesis of {job}")

    monkeypatch.setattr(synth_write, "_write_clip", fail)
    synth.generate(tiny_set, clips_per_genre=CLIPS, duration=DURATION, seed=0, workers=2)
    assert (
        synth_main(
            ["--out", str(tiny_set), "--clips-per-genre", str(CLIPS), "--duration", str(DURATION)]
        )
        == 0
    )
    assert _mtimes(tiny_set) == before


def test_missing_file_is_restored_and_new_parameters_rewrite(tmp_path: Path) -> None:
    root = synth.generate(tmp_path / "set", clips_per_genre=3, duration=0.2, seed=0)
    original = _files(root)
    victim = synth.clip_path(root, "jazz", 1)
    victim.unlink()
    untouched = synth.clip_path(root, "jazz", 0).stat().st_mtime_ns
    synth.generate(root, clips_per_genre=3, duration=0.2, seed=0)
    assert _files(root) == original
    assert synth.clip_path(root, "jazz", 0).stat().st_mtime_ns == untouched
    # Fewer clips and another seed: the folder is rewritten and stale clips removed.
    synth.generate(root, clips_per_genre=2, duration=0.2, seed=5)
    assert sorted(p.name for p in (root / "genres_original" / "jazz").iterdir()) == [
        "jazz.00000.wav",
        "jazz.00001.wav",
    ]
    assert synth.matches(root, 2, 0.2, 5)
    assert _files(root)["jazz/jazz.00000.wav"] != original["jazz/jazz.00000.wav"]


def test_refuses_to_overwrite_foreign_audio(tmp_path: Path) -> None:
    real = tmp_path / "gtzan" / "genres_original" / "blues"
    real.mkdir(parents=True)
    sf.write(real / "blues.00000.wav", np.zeros(100), 22_050, subtype="PCM_16")
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path / "gtzan", clips_per_genre=1, duration=0.1)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--clips-per-genre", "1", "--duration", "0.2", "--seed", "3"]
    assert synth_main(argv) == 0
    assert "100%" in capsys.readouterr().err  # progress on stderr
    assert synth.matches(out, 1, 0.2, 3)
    assert synth_main(["--out", str(out), "--workers", "0"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        synth_main(["--help"])
    assert exit_info.value.code == 0
    assert "genres_original" in capsys.readouterr().out


def _band_spectrum(x: np.ndarray, bands: int = 48) -> np.ndarray:
    """Mean power spectrum (STFT 1024 / hop 512) in log-spaced bands, in dB."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::512] * np.hanning(1024)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    edges = np.unique(np.geomspace(1, power.size, bands + 1).astype(int))
    return 10 * np.log10(np.add.reduceat(power, edges[:-1]) + 1e-10)


def _logistic_regression(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, epochs: int = 300
) -> np.ndarray:
    weights, bias, targets = np.zeros((x_train.shape[1], 10)), np.zeros(10), np.eye(10)[y_train]
    for _ in range(epochs):
        logits = x_train @ weights + bias
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        grad = (prob - targets) / len(y_train)
        weights -= 0.1 * (x_train.T @ grad + 1e-2 * weights)
        bias -= 0.1 * grad.sum(axis=0)
    return (x_test @ weights + bias).argmax(axis=1)


def test_classes_differ_but_overlap() -> None:
    """A mean-spectrum linear baseline, split by track, beats chance but is far from perfect."""
    clips, n_train = 10, 6
    feats = np.array(
        [
            [_band_spectrum(synth.synthesize_clip(g, i, 0, 3.0)) for i in range(clips)]
            for g in GENRES
        ]
    )
    labels = np.repeat(np.arange(10), clips).reshape(10, clips)
    x_train = feats[:, :n_train].reshape(-1, feats.shape[-1])
    x_test = feats[:, n_train:].reshape(-1, feats.shape[-1])
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    pred = _logistic_regression(
        (x_train - mean) / std, labels[:, :n_train].ravel(), (x_test - mean) / std
    )
    accuracy = float((pred == labels[:, n_train:].ravel()).mean())
    assert 0.2 < accuracy < 0.98, accuracy
