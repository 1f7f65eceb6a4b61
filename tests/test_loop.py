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


def compiled_graphs(model, **compile_options):
    """``model`` compiled with a backend that records the graphs Dynamo hands the compiler
    (their code and their inputs' shapes, what Inductor's cache keys on); returns the compiled
    model and the list the graphs land in when it first runs."""
    from raysearch.training.loop import compile_model

    graphs = []

    def recording_backend(graph_module, example_inputs):
        shapes = tuple(tuple(t.shape) for t in example_inputs if hasattr(t, "shape"))
        graphs.append((graph_module.code, shapes))
        return graph_module.forward

    return compile_model(model, "default", recording_backend, **compile_options), graphs


def test_compile_gives_networks_of_every_se_ratio_the_same_graphs():
    """Inductor's on-disk cache serves a graph it compiled before: the same code on inputs of
    the same shapes. With the SE blocks' layers (the only ones r sizes) left eager, networks
    of two ratios give the same graphs, and compute what the eager network computes."""
    from raysearch.model import SECNN

    def graphs_of(ratio: float, share_se: bool) -> list[tuple]:
        torch.manual_seed(0)
        model = SECNN(dataclasses.replace(MODEL, ratio=ratio)).eval()
        x = torch.randn(2, *SHAPE) * 10 - 30
        compiled, graphs = compiled_graphs(model, share_se=share_se)
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


def test_select_kernels_train_exactly_as_aten_does(splits, tmp_path):
    """ReLU → max-pool as one op (raysearch.ops): the same run, float for float."""
    aten, _ = run(splits, tmp_path, "aten")
    select, _ = run(splits, tmp_path, "select", kernels="select")
    for column in ("train_loss", "val_loss", "best_val_acc", "test_acc"):
        assert select[column] == aten[column]


def test_padded_se_gives_networks_of_every_ratio_one_graph():
    """With padded SE bottlenecks (what a compiled run builds) the graph Dynamo hands the
    compiler, and its inputs' shapes, are the same for every r, so Inductor's cache, keyed on
    both, serves a second ratio's compile; and it computes what the eager network computes."""
    from raysearch.model import SECNN

    def graphs_of(ratio: float, pad_se: bool) -> list[tuple]:
        torch.manual_seed(0)
        model = SECNN(dataclasses.replace(MODEL, ratio=ratio), pad_se=pad_se).eval()
        x = torch.randn(2, *SHAPE) * 10 - 30
        compiled, graphs = compiled_graphs(model)
        torch.manual_seed(0)
        torch.testing.assert_close(compiled(x), SECNN(dataclasses.replace(MODEL, ratio=ratio))(x))
        return graphs

    try:
        padded = [graphs_of(ratio, pad_se=True) for ratio in (2, 3, 8)]
        plain = [graphs_of(ratio, pad_se=False) for ratio in (2, 8)]
    finally:
        torch._dynamo.reset()
    assert len(padded[0]) == 1  # one whole graph, no break
    assert padded[0] == padded[1] == padded[2]
    assert plain[0] != plain[1]


def test_a_padded_run_resumes_unpadded_and_the_other_way_round(tmp_path):
    """A compiled run's resume state (padded SE, Adam moments of the padded shapes) goes on in
    an eager run (unpadded), and back: the moments are cut or zero-padded to fit."""
    from raysearch.model import SECNN
    from raysearch.training.checkpoint import save_checkpoint
    from raysearch.training.loop import Progress, load_resume_state, save_resume_state

    x = torch.randn(4, 1, *SHAPE)
    config = dataclasses.replace(MODEL, ratio=3.0)

    def step(model, optimizer):
        torch.manual_seed(1)
        model(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    for saved_padded in (True, False):
        torch.manual_seed(0)
        model = SECNN(config, pad_se=saved_padded)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        step(model, optimizer)
        folder = str(tmp_path / f"saved-padded-{saved_padded}")
        os.makedirs(folder)
        save_checkpoint(model.state_dict(), config, {}, {}, 1, {}, folder)
        generator = torch.Generator()
        save_resume_state(folder, model, optimizer, Progress(epoch=1), generator)
        resumed = SECNN(config, pad_se=not saved_padded)
        resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.01)
        load_resume_state(folder, resumed, resumed_optimizer, torch.device("cpu"), generator)
        step(model, optimizer)
        step(resumed, resumed_optimizer)  # Adam's second step needs the first one's moments
        for name, value in model.state_dict().items():
            torch.testing.assert_close(resumed.state_dict()[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_second_ratio_compiles_from_the_cache_of_the_first(splits, tmp_path, monkeypatch):
    """Two compiled runs of two ratios, an empty Inductor cache: the second finds the first
    one's graphs there (forward and backward), and both report the network's real size."""
    from torch._dynamo.utils import counters

    from raysearch.model import SECNN, count_parameters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    hits, sizes = [], []
    try:
        for ratio in (2.0, 8.0):
            before = counters["inductor"]["fxgraph_cache_hit"]
            recorder = Recorder(tmp_path / f"r{ratio}")
            os.makedirs(recorder.folder)
            config = TrainConfig(epochs=1, batch_size=16, patience=0, compile="default")
            model = dataclasses.replace(MODEL, ratio=ratio)
            fit(model, config, splits, recorder, Placement(torch.device("cpu")))
            hits.append(counters["inductor"]["fxgraph_cache_hit"] - before)
            sizes.append((recorder.metrics[0]["n_params"], count_parameters(SECNN(model))))
    finally:
        torch._dynamo.reset()
    assert hits[0] == 0 and hits[1] >= 2  # forward and backward graphs
    assert all(reported == real for reported, real in sizes) and sizes[0] != sizes[1]


def test_kernels_auto_selects_when_compiled_and_stays_aten_when_eager():
    config = TrainConfig()
    assert config.kernels == "auto"
    assert config.kernels_for(config.compile_mode(on_gpu=False)) == "aten"  # CPUs: eager
    assert TrainConfig(compile="auto").kernels_for("default") == "select"  # a GPU: compiled
    assert TrainConfig(kernels="select-conv1").kernels_for("off") == "select-conv1"  # as asked
