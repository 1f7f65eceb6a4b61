"""What a completed run keeps beside its checkpoint: predictions.npz, the best weights'
validation and test probabilities (no Ray)."""

from __future__ import annotations

import os

import numpy as np
import torch

from raysearch.results.ensemble import score
from raysearch.training.config import TrainConfig
from raysearch.training.loop import Placement, fit
from raysearch.training.predictions import PREDICTIONS_FILE, load_predictions
from tests.test_loop import MODEL, Recorder, split


def test_only_the_last_checkpoint_keeps_the_best_weights_predictions(tmp_path):
    splits = {"train": split(120, 0), "val": split(60, 1), "test": split(60, 2)}
    recorder = Recorder(tmp_path / "run")
    os.makedirs(recorder.folder)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, patience=0)
    final = fit(MODEL, config, splits, recorder, Placement(torch.device("cpu")))
    assert [os.path.exists(os.path.join(c, PREDICTIONS_FILE)) for c in recorder.checkpoints] == [
        False, False, True,
    ]  # fmt: skip
    assert final["predictions_s"] > 0
    kept = load_predictions(recorder.checkpoints[-1])
    for name in ("val", "test"):
        assert kept[name].probs.shape == (60, 10) and kept[name].probs.dtype == np.float16
        assert kept[name].label.tolist() == splits[name].label.tolist()
        names = kept[name].tracks[kept[name].track]
        assert names.tolist() == splits[name].track_id.astype(str).tolist()
    # the figures the run reported, from the kept float16 probabilities
    val = score(kept["val"].probs, kept["val"].label, kept["val"].track)
    best = final["history"][final["best_epoch"] - 1]
    assert val.segment_acc == final["best_val_acc"] == best["val_acc"]
    assert val.track_acc == best["val_track_acc"]
    test = score(kept["test"].probs, kept["test"].label, kept["test"].track)
    assert (test.segment_acc, test.track_acc) == (final["test_acc"], final["test_track_acc"])
