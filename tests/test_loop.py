"""The training loop without Ray: reports, checkpoints every epoch, exact resume, augmentation."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch

from raysearch.model import ModelConfig
from raysearch.training.config import TrainConfig
from raysearch.training.data import SplitArrays
from raysearch.training.loop import RESUME_FILE, Placement, fit

SHAPE = (32, 32)
MODEL = ModelConfig(
    channels=(8, 8, 8, 8, 8), input_shape=SHAPE, input_mean=-30, input_std=10, dropout=0.0
)


def split(n: int, seed: int) -> SplitArrays:
    """Segments whose level says their class: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    x = rng.normal(-40, 2, size=(n, *SHAPE)) + labels[:, None, None] * 4.0
    tracks = np.array([f"{g}.{i // 3:05d}" for i, g in enumerate(labels)], dtype=object)
    return SplitArrays(x.astype(np.float16), labels.astype(np.int64), tracks)


@pytest.fixture(scope="module")
def splits():
    return {"train": split(120, 0), "val": split(60, 1), "test": split(60, 2)}


class Recorder:
    """A reporter that keeps the metrics and a copy of every checkpoint folder."""

    def __init__(self, folder) -> None:
        self.metrics, self.checkpoints, self.folder = [], [], folder

    def __call__(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.metrics.append(dict(metrics))
        if checkpoint_dir:
            kept = os.path.join(self.folder, f"epoch{metrics['epoch']}")
            shutil.copytree(checkpoint_dir, kept)
            self.checkpoints.append(kept)


def run(splits, tmp_path, name: str, resume_from=None, **settings) -> tuple[dict, Recorder]:
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, patience=0, **settings)
    recorder = Recorder(tmp_path / name)
    os.makedirs(recorder.folder)
    final = fit(MODEL, config, splits, recorder, Placement(torch.device("cpu")),
                resume_from=resume_from)  # fmt: skip
    return final, recorder


def test_every_epoch_reports_a_checkpoint_and_the_last_one_the_test_numbers(splits, tmp_path):
    final, recorder = run(splits, tmp_path, "plain")
    assert [m["epoch"] for m in recorder.metrics] == [1, 2, 3]
    assert len(recorder.checkpoints) == 3
    assert os.path.exists(os.path.join(recorder.checkpoints[0], RESUME_FILE))
    assert not os.path.exists(os.path.join(recorder.checkpoints[-1], RESUME_FILE))  # finished
    assert "test_acc" in recorder.metrics[-1] and "test_acc" not in recorder.metrics[0]
    assert final["history"][-1]["train_loss"] < final["first_batch_loss"]
    assert final["best_val_loss"] == min(m["val_loss"] for m in recorder.metrics)


def test_start_up_counts_from_when_the_run_began_to_its_first_step(splits, tmp_path):
    import time

    config = TrainConfig(epochs=2, batch_size=16, patience=0)
    recorder = Recorder(tmp_path / "startup")
    os.makedirs(recorder.folder)
    called = time.time()
    began = called - 30.0  # e.g. the trial's process started 30 s before fit was called
    fit(MODEL, config, splits, recorder, Placement(torch.device("cpu"), started_at=began))
    fit_s = time.time() - called
    startup = [m["startup_s"] for m in recorder.metrics]
    assert startup[0] == startup[1]  # the run's one start-up, on every epoch's report
    # after the 30 s, within the first epoch (set-up and the first step, not the whole run)
    assert 30.0 <= startup[0] < 30.0 + fit_s - recorder.metrics[1]["epoch_s"]
    assert "gpu_mem_peak_gib" not in recorder.metrics[0]  # a CUDA figure only


def test_a_resumed_run_goes_on_exactly_where_it_stopped(splits, tmp_path):
    whole, _ = run(splits, tmp_path, "whole")
    _, first = run(splits, tmp_path, "first")
    resumed, recorder = run(splits, tmp_path, "resumed", resume_from=first.checkpoints[0])
    assert [m["epoch"] for m in recorder.metrics] == [2, 3]  # not epoch 1 again
    for column in ("train_loss", "val_loss", "best_val_acc"):
        assert resumed[column] == whole[column]  # the same numbers as without the break
    assert resumed["test_acc"] == whole["test_acc"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]


def test_compile_auto_trains_eagerly_on_cpus(splits, tmp_path):
    """``compile: auto`` (the GPU spaces' setting) compiles on CUDA only: on CPUs the run is
    the eager one, float for float, and Dynamo compiles nothing."""
    from torch._dynamo.utils import counters

    assert TrainConfig(compile="auto").compile_mode(on_gpu=True) == "default"
    assert TrainConfig(compile="reduce-overhead").compile_mode(on_gpu=False) == "reduce-overhead"
    eager, _ = run(splits, tmp_path, "eager")
    graphs = counters["stats"]["unique_graphs"]
    auto, _ = run(splits, tmp_path, "auto", compile="auto")
    assert counters["stats"]["unique_graphs"] == graphs
    losses = [(h["train_loss"], h["val_loss"]) for h in eager["history"]]
    assert [(h["train_loss"], h["val_loss"]) for h in auto["history"]] == losses
    assert auto["test_acc"] == eager["test_acc"]


def test_augmentation_runs_inside_the_step_and_changes_training(splits, tmp_path):
    plain, _ = run(splits, tmp_path, "plain")
    masked, _ = run(splits, tmp_path, "masked", freq_masks=2, freq_width=8, time_masks=2,
                    time_width=8, mixup_alpha=0.2)  # fmt: skip
    assert masked["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert np.isfinite(masked["train_loss"])


def test_compile_compiles_every_trial_of_a_reused_process():
    """Dynamo keeps one compiled entry per network shape under SECNN.forward and, past its
    recompile limit, runs the rest uncompiled without an error; a reused Tune actor trains one
    network after another, so compile_model clears that cache for each trial."""
    from raysearch.model import SECNN
    from raysearch.training.loop import compile_model

    graphs = []

    def counting_backend(graph_module, example_inputs):  # one call per graph compiled
        graphs.append(graph_module)
        return graph_module.forward

    def graphs_per_network(compile_fn) -> list[int]:
        counts = []
        torch._dynamo.reset()
        for ratio in (2, 4, 8):  # three SE widths: three shapes of the same function
            before = len(graphs)
            net = compile_fn(SECNN(dataclasses.replace(MODEL, ratio=ratio)))
            net(torch.zeros(2, *SHAPE))
            counts.append(len(graphs) - before)
        return counts

    try:  # (monkeypatch.setattr on Dynamo's config left recompile_limit deleted)
        with torch._dynamo.config.patch(recompile_limit=2):
            plain = graphs_per_network(lambda net: torch.compile(net, backend=counting_backend))
            ours = graphs_per_network(lambda net: compile_model(net, "default", counting_backend))
    finally:
        torch._dynamo.reset()
    assert plain == [1, 1, 0]  # the third network ran uncompiled
    assert ours[0] > 0 and ours == [ours[0]] * 3


def test_compile_gives_networks_of_every_se_ratio_the_same_graphs():
    """Inductor's on-disk cache serves a graph it compiled before: the same code on inputs of
    the same shapes. With the SE blocks' layers (the only ones r sizes) left eager, networks
    of two ratios give the same graphs, and compute what the eager network computes."""
    from raysearch.model import SECNN
    from raysearch.training.loop import compile_model

    def graphs_of(ratio: float, share_se: bool) -> list[tuple]:
        graphs = []

        def recording_backend(graph_module, example_inputs):
            shapes = tuple(tuple(t.shape) for t in example_inputs if hasattr(t, "shape"))
            graphs.append((graph_module.code, shapes))
            return graph_module.forward

        torch.manual_seed(0)
        model = SECNN(dataclasses.replace(MODEL, ratio=ratio)).eval()
        x = torch.randn(2, *SHAPE) * 10 - 30
        compiled = compile_model(model, "default", recording_backend, share_se=share_se)
        torch.testing.assert_close(compiled(x), model(x))
        return graphs

    try:
        shared = [graphs_of(ratio, share_se=True) for ratio in (2, 8)]
        whole = [graphs_of(ratio, share_se=False) for ratio in (2, 8)]
    finally:
        torch._dynamo.reset()
    assert len(shared[0]) > 1  # a graph break at each SE block's layers
    assert shared[0] == shared[1]
    assert len(whole[0]) == 1 and whole[0] != whole[1]  # the SE layers' shapes differ
