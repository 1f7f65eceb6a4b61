"""Evaluation of a model on a split held on the device: loss, segment and track metrics.

Large batches, no gradients; losses and probabilities stay on the device until the end, where
one transfer brings the probabilities back for the track vote (:mod:`raysearch.metrics`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from raysearch.data import GENRES
from raysearch.metrics import classification_report
from raysearch.training.data import SplitArrays
from raysearch.training.feeds import to_device


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; full precision elsewhere."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_input(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, F, T) segments → (B, 1, F, T), in channels_last layout when asked."""
    x = x.unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class EvalSplit:
    """A validation or test split on the device, with its labels and track ids on the host."""

    def __init__(self, split: SplitArrays, device: torch.device) -> None:
        self.x = to_device(split.spectrogram, device)
        self.y = to_device(split.label, device)
        self.labels = np.asarray(split.label)
        self.track_id = np.asarray(split.track_id)

    def __len__(self) -> int:
        return len(self.labels)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, split: EvalSplit, batch_size: int, amp: bool, channels_last=False
) -> dict:
    """``loss`` (mean cross-entropy), :func:`classification_report`'s segment / track
    accuracies, per-class accuracy and confusion matrix, and ``probs``: the (N, K) segment
    probabilities on the host (what a completed trial keeps, :mod:`..predictions`)."""
    was_training = model.training
    model.eval()
    device = split.x.device
    loss_sum = torch.zeros((), device=device)
    probs = []
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size]
        y = split.y[start : start + batch_size]
        with autocast(device, amp):
            logits = model(model_input(x, channels_last)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        probs.append(torch.softmax(logits, dim=1))
    model.train(was_training)
    if not probs:
        return {
            "loss": float("nan"),
            "probs": np.zeros((0, len(GENRES)), dtype=np.float32),
            **classification_report(
                np.zeros((0, len(GENRES))), split.labels, split.track_id, list(GENRES)
            ),
        }
    probs_host = torch.cat(probs).cpu().numpy()  # the one device → host transfer
    report = classification_report(probs_host, split.labels, split.track_id, list(GENRES))
    return {"loss": float(loss_sum) / len(split), "probs": probs_host, **report}
