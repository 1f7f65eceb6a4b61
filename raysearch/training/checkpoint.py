"""The checkpoint file: ``model.pt`` holding the network, its settings and the shards'
spectrogram settings, loadable without Ray (:func:`load_checkpoint`)."""

from __future__ import annotations

import io
import os
import tempfile

import torch

from raysearch.data import GENRES
from raysearch.model import SECNN, ModelConfig
from raysearch.storage import exists, is_uri, join, read_bytes

CHECKPOINT_FILE = "model.pt"
FORMAT = "raysearch-secnn/1"


def save_checkpoint(
    state_dict: dict,
    model_config: ModelConfig,
    train_config: dict,
    spectrogram: dict,
    epoch: int,
    metrics: dict,
    folder: str | None = None,
) -> str:
    """Write ``model.pt`` into ``folder`` (a new temporary folder by default); returns it."""
    folder = folder or tempfile.mkdtemp(prefix="raysearch-ckpt-")
    torch.save(
        {
            "format": FORMAT,
            "model_config": model_config.to_dict(),
            "train_config": train_config,
            "labels": list(GENRES),
            "spectrogram": spectrogram,  # the shards' settings: prediction must use the same
            "epoch": epoch,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        },
        os.path.join(folder, CHECKPOINT_FILE),
    )
    return folder


def load_checkpoint(path: str) -> tuple[SECNN, dict]:
    """(model in eval mode, payload) from a checkpoint folder or ``model.pt``, a local path or
    a URI (the checkpoint a search kept in a bucket), without Ray."""
    if is_uri(path):
        file = path if path.endswith(".pt") else join(path, CHECKPOINT_FILE)
        if not exists(file):
            raise FileNotFoundError(f"{path}: no {CHECKPOINT_FILE} checkpoint here")
        source = io.BytesIO(read_bytes(file))
    else:
        source = os.path.join(path, CHECKPOINT_FILE) if os.path.isdir(path) else path
        if not os.path.exists(source):
            raise FileNotFoundError(f"{path}: no {CHECKPOINT_FILE} checkpoint here")
    payload = torch.load(source, map_location="cpu", weights_only=True)
    model = SECNN(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
