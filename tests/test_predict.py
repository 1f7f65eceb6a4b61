"""Prediction applies the checkpoint's spectrogram settings, log-mel included, without Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysearch.commands.predict import main
from raysearch.data.spectrogram import SpectrogramConfig, load_audio, segment_clip
from raysearch.inference import predict_file
from raysearch.model import SECNN, ModelConfig
from raysearch.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import write_clip

MEL = SpectrogramConfig(features="mel", n_mels=64)


def _checkpoint(folder, spectrogram: dict, input_shape: tuple[int, int]) -> str:
    torch.manual_seed(0)
    model_config = ModelConfig(channels=(4, 8), se_blocks=(1,), input_shape=input_shape)
    state = SECNN(model_config).state_dict()
    return save_checkpoint(state, model_config, {}, spectrogram, 1, {}, folder=str(folder))


def test_a_log_mel_checkpoint_predicts_from_log_mel_segments(tmp_path):
    folder = _checkpoint(tmp_path, MEL.to_dict(), MEL.shape)
    wav = write_clip(tmp_path / "clip.wav", 7.5, freq=880.0)
    model, payload = load_checkpoint(folder)
    config = SpectrogramConfig(**payload["spectrogram"])
    assert config == MEL
    probs = predict_file(model, str(wav), config)
    # the same numbers by hand: the pipeline's segment_clip with the mel settings, 4 segments
    y, _ = load_audio(wav.read_bytes(), MEL.sample_rate)
    segments = segment_clip(y, MEL, max_segments=0)
    assert segments.shape == (4, 64, 129)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(segments.astype(np.float32))), dim=1)
    np.testing.assert_allclose(probs, expected.numpy().mean(axis=0), rtol=1e-5)


def test_predict_cli_on_a_log_mel_checkpoint(tmp_path, capsys):
    folder = _checkpoint(tmp_path, MEL.to_dict(), MEL.shape)
    wav = write_clip(tmp_path / "clip.wav", 4.5)
    assert main([folder, str(wav), "--top", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{wav}: ") and line.count(",") == 1


def test_a_checkpoint_without_features_is_stft_and_a_mismatch_is_refused(tmp_path, capsys):
    old = {k: v for k, v in MEL.to_dict().items() if k not in ("features", "n_mels")}
    folder = _checkpoint(tmp_path, old, MEL.shape)  # a mel-sized network, STFT settings
    wav = write_clip(tmp_path / "clip.wav", 4.5)
    model, payload = load_checkpoint(folder)
    assert SpectrogramConfig(**payload["spectrogram"]).features == "stft"
    with pytest.raises(
        ValueError, match=r"takes \(64, 129\) segments .* \(stft\) give \(513, 129\)"
    ):
        predict_file(model, str(wav), SpectrogramConfig(**payload["spectrogram"]))
    assert main([folder, str(wav)]) == 1
    assert "takes (64, 129) segments" in capsys.readouterr().err


def test_unusable_spectrogram_settings_in_a_checkpoint_are_one_error_line(tmp_path, capsys):
    folder = _checkpoint(tmp_path, {"features": "cqt"}, (513, 129))
    assert main([folder, str(tmp_path / "any.wav")]) == 2
    assert "features must be one of stft, mel, got 'cqt'" in capsys.readouterr().err


def test_predict_cli_classifies_every_audio_file_under_a_folder(tmp_path, capsys):
    folder = _checkpoint(tmp_path, MEL.to_dict(), MEL.shape)
    root = tmp_path / "genres"
    clips = [
        write_clip(root / "blues" / "blues.00000.wav", 4.5),
        write_clip(root / "jazz" / "jazz.00000.au", 4.5, freq=880.0),
    ]
    (root / "jazz" / "notes.txt").write_text("not audio")
    assert main([folder, str(root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(c) for c in clips]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([folder, str(empty)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {empty}: no audio files (.au, .wav, .flac, .ogg, .mp3, .aif, .aiff) in this folder"
    )


def test_predict_cli_stops_quietly_when_its_reader_goes(tmp_path):
    import subprocess
    import sys

    folder = _checkpoint(tmp_path, MEL.to_dict(), MEL.shape)
    clips = [str(write_clip(tmp_path / f"clip{i}.wav", 4.5)) for i in range(3)]
    command = [sys.executable, "-m", "raysearch.predict", folder, *clips]
    reader_gone = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader_gone.stdout.close()  # as `| head -0` would: every write fails with EPIPE
    _, err = reader_gone.communicate(timeout=120)
    assert reader_gone.returncode == 0, err.decode()
    assert b"BrokenPipeError" not in err and b"Traceback" not in err


def _ensemble_file(tmp_path, weights: list[float], spectrogram=None) -> tuple[str, list[str]]:
    """An ensemble.json of len(weights) differently initialised mel checkpoints."""
    import json

    folders = []
    for i in range(len(weights)):
        torch.manual_seed(i)
        model_config = ModelConfig(channels=(4, 8), se_blocks=(1,), input_shape=MEL.shape)
        settings = MEL.to_dict() if spectrogram is None or i == 0 else spectrogram
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        state = SECNN(model_config).state_dict()
        folders.append(save_checkpoint(state, model_config, {}, settings, 1, {}, str(folder)))
    members = [
        {"trial_id": f"t{i}", "checkpoint": f, "weight": w}
        for i, (f, w) in enumerate(zip(folders, weights, strict=True))
    ]
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps({"format": "raysearch-ensemble/1", "members": members}))
    return str(path), folders


def test_an_ensemble_predicts_exactly_the_weighted_average_of_its_members(tmp_path, capsys):
    from raysearch.inference import load_ensemble_models, predict_ensemble

    location, folders = _ensemble_file(tmp_path, [0.52, 0.36, 0.12])
    wav = str(write_clip(tmp_path / "clip.wav", 7.5, freq=660.0))
    members = [load_checkpoint(folder)[0] for folder in folders]  # each checkpoint on its own
    alone = [predict_file(model, wav, MEL).astype(np.float64) for model in members]
    expected = 0.52 * alone[0] + 0.36 * alone[1] + 0.12 * alone[2]
    assert not np.allclose(alone[0], alone[1])  # the members differ
    got = predict_ensemble(load_ensemble_models(location), wav, MEL)
    np.testing.assert_array_equal(got, expected)
    assert main([location, wav, "--top", "10"]) == 0
    printed = dict(
        pair.rsplit(" ", 1) for pair in capsys.readouterr().out.split(": ", 1)[1].split(", ")
    )
    from raysearch.data import GENRES

    assert {g: float(p) for g, p in printed.items()} == {
        g: round(float(p), 3) for g, p in zip(GENRES, expected, strict=True)
    }


def test_an_ensemble_of_networks_with_other_settings_is_refused(tmp_path, capsys):
    stft = {k: v for k, v in MEL.to_dict().items() if k != "n_mels"} | {"n_mels": 32}
    location, _ = _ensemble_file(tmp_path, [0.5, 0.5], spectrogram=stft)
    wav = str(write_clip(tmp_path / "clip.wav", 4.5))
    assert main([location, wav]) == 2
    assert "member t1 has other labels or spectrogram settings" in capsys.readouterr().err
