"""Genre of audio files with a trained checkpoint, without Ray (``raysearch predict``).

A folder stands for the audio files under it (any depth, by extension, sorted), so the GTZAN
root or one genre's folder can be given as it is.

Each file (any length of at least 2.9 s, any sample rate, mono or stereo, any format libsndfile
reads: WAV, AU, FLAC, OGG, ...) goes through the same decoding and spectrogram code as the
training shards, is cut into 3 s segments every 1.5 s (all of them: long files are not capped
at 19), and the segment probabilities are averaged — the track vote used for test accuracy.

The spectrogram settings come from the checkpoint (the shards' manifest, carried by training),
features included: a network trained on log-mel shards gets log-mel segments, through the same
:func:`raysearch.data.spectrogram.segment_clip` that made the shards. A checkpoint without
``features`` predates log-mel and is STFT.

An ensemble (``ensemble.json`` of a search, :mod:`raysearch.results.search_ensemble`) stands
for its members: each member's mean probabilities of a file, averaged with the ensemble's
weights (:func:`predict_ensemble`), the segments computed once, as the members share their
spectrogram settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from raysearch.data.spectrogram import SpectrogramConfig, load_audio, segment_clip
from raysearch.errors import UserError

AUDIO_SUFFIXES = (".au", ".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


def audio_files(paths: list[str]) -> list[str]:
    """``paths`` with each folder replaced by the audio files under it; a file stays as given
    (its decoding says whether it is audio). A folder without audio files is a UserError."""
    found = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        inside = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(path)
            for name in names
            if name.lower().endswith(AUDIO_SUFFIXES) and not name.startswith(".")
        )
        if not inside:
            raise UserError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
        found.extend(inside)
    return found


def predict_file(model, path: str, config: SpectrogramConfig, batch_size: int = 32) -> np.ndarray:
    """Mean class probabilities (K,) over the segments of one audio file."""
    check_shape(model, config)
    return segment_probs(model, file_segments(path, config), batch_size).mean(axis=0)


def check_shape(model, config: SpectrogramConfig) -> None:
    expected = tuple(model.config.input_shape)
    if expected != config.shape:
        raise ValueError(
            f"the checkpoint's network takes {expected} segments but its spectrogram settings "
            f"({config.features}) give {config.shape}"
        )


def file_segments(path: str, config: SpectrogramConfig) -> np.ndarray:
    """Every 3 s segment (S, F, T) of one audio file."""
    with open(path, "rb") as f:
        y, _ = load_audio(f.read(), config.sample_rate)
    segments = segment_clip(y, config, max_segments=0)
    if len(segments) == 0:
        raise ValueError(
            f"too short: {len(y) / config.sample_rate:.2f} s, one segment needs "
            f"{config.segment_seconds - config.pad_tolerance_seconds:.1f} s"
        )
    return segments


def segment_probs(model, segments: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (S, K) of segments (S, F, T)."""
    import torch

    probs = []
    with torch.no_grad():
        for start in range(0, len(segments), batch_size):
            x = torch.from_numpy(segments[start : start + batch_size].astype(np.float32))
            probs.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(probs)


@dataclass(frozen=True)
class Ensemble:
    """An ensemble's member networks (eval mode), their weights, and what they share: class
    names and spectrogram settings."""

    models: list
    weights: list[float]
    labels: list[str]
    spectrogram: dict


def load_ensemble_models(location: str) -> Ensemble:
    """The members of ``ensemble.json`` (a path or a URI), each from its checkpoint; a
    UserError when the file is not an ensemble or its members do not share labels and
    spectrogram settings."""
    from raysearch.storage import read_text
    from raysearch.training.checkpoint import load_checkpoint

    try:
        payload = json.loads(read_text(location))
    except (OSError, ValueError) as exc:
        raise UserError(f"{location}: cannot read the ensemble ({exc})") from None
    if not str(payload.get("format", "")).startswith("raysearch-ensemble/"):
        raise UserError(f"{location}: not a raysearch ensemble.json (no ensemble format)")
    members = payload.get("members") or []
    if not members:
        raise UserError(f"{location}: the ensemble has no members")
    models, weights, shared = [], [], None
    for member in members:
        model, checkpoint = load_checkpoint(member["checkpoint"])
        settings = (checkpoint["labels"], checkpoint.get("spectrogram", {}))
        if shared is not None and settings != shared:
            raise UserError(
                f"{location}: member {member['trial_id']} has other labels or spectrogram "
                "settings than the first: its networks cannot share segments"
            )
        shared = settings
        models.append(model)
        weights.append(float(member["weight"]))
    return Ensemble(models, weights, list(shared[0]), dict(shared[1]))


def predict_ensemble(
    ensemble: Ensemble, path: str, config: SpectrogramConfig, batch_size: int = 32
) -> np.ndarray:
    """The weighted average (K,) of the members' mean class probabilities of one file: what
    :func:`predict_file` gives for each member, averaged with the ensemble's weights."""
    for model in ensemble.models:
        check_shape(model, config)
    segments = file_segments(path, config)
    total = np.zeros(len(ensemble.labels), dtype=np.float64)
    for model, weight in zip(ensemble.models, ensemble.weights, strict=True):
        member = segment_probs(model, segments, batch_size).mean(axis=0)  # predict_file's
        total += weight * member.astype(np.float64)
    return total
