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
"""

from __future__ import annotations

import os

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
    import torch

    expected = tuple(model.config.input_shape)
    if expected != config.shape:
        raise ValueError(
            f"the checkpoint's network takes {expected} segments but its spectrogram settings "
            f"({config.features}) give {config.shape}"
        )

    with open(path, "rb") as f:
        y, _ = load_audio(f.read(), config.sample_rate)
    segments = segment_clip(y, config, max_segments=0)
    if len(segments) == 0:
        raise ValueError(
            f"too short: {len(y) / config.sample_rate:.2f} s, one segment needs "
            f"{config.segment_seconds - config.pad_tolerance_seconds:.1f} s"
        )
    probs = []
    with torch.no_grad():
        for start in range(0, len(segments), batch_size):
            x = torch.from_numpy(segments[start : start + batch_size].astype(np.float32))
            probs.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(probs).mean(axis=0)
