"""``python -m raysearch.train``'s path end to end on CPU: a Ray Train group of 2 DDP workers,
2 epochs, run folder, checkpoint, prediction."""

from __future__ import annotations

import csv
import json

import pytest

from raysearch.training.checkpoint import load_checkpoint
from raysearch.training.config import TrainConfig
from raysearch.training.data import model_config_for
from raysearch.training.runner import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(ray_session, tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model_config = model_config_for(tiny_shards, channels=(8, 16, 32, 64, 32))
    config = TrainConfig(
        epochs=2, batch_size=8, patience=0, workers=2, use_gpu=False, cpus_per_worker=1, seed=0
    )
    final = run(tiny_shards, model_config, config, str(out))
    return out, final


def test_two_epochs_two_workers_write_the_run_folder(trained):
    out, final = trained
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 2
    assert summary["train"]["workers"] == 2
    # both workers trained: the all-reduced count is the whole train split (each rank takes
    # the same number of segments, so an odd one out is left out)
    manifest = json.loads(open(summary["shards"] + "/manifest.json").read())
    train = manifest["counts"]["segments"]["train"]
    assert final["history"][0]["train_segments"] == train - train % 2
    for name in ("accuracy.png", "loss.png", "confusion.png"):
        assert (out / name).stat().st_size > 1000


def test_loss_decreases_from_first_batch_to_the_end(trained):
    _, final = trained
    assert final["history"][-1]["train_loss"] < final["first_batch_loss"]


def test_final_metrics_include_track_vote_on_test(trained):
    _, final = trained
    assert 0.0 <= final["test_acc"] <= 1.0
    assert 0.0 <= final["test_track_acc"] <= 1.0
    assert final["test_tracks"] == 30  # 3 of 10 tracks per genre
    assert sum(map(sum, final["test_confusion"])) == 30


def test_checkpoint_loads_without_ray_and_predicts(trained, tmp_path):
    import subprocess
    import sys

    from tests.conftest import write_clip

    out, _ = trained
    model, payload = load_checkpoint(str(out / "checkpoint"))
    assert payload["labels"][0] == "blues"
    assert payload["spectrogram"]["hop_length"] == 512
    clip = write_clip(tmp_path / "song.wav", 7.0, rate=44_100, channels=2)
    code = (
        "import sys, runpy; sys.argv = ['predict', sys.argv[1], sys.argv[2]]; "
        "runpy.run_module('raysearch.commands.predict', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out / "checkpoint"), str(clip)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{clip}: ")
    assert len(done.stdout.split(",")) == 3  # the top 3 genres
