"""The search end to end on a local Ray cluster: smoke.yaml, the leaderboard, and resume after
a real SIGKILL of the driver."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from raysearch.search.run import concurrency_for, reuses_actors, run_search
from raysearch.search.space import SpaceError, load_space, parse_space

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
LEADERBOARD_COLUMNS = [
    "rank",
    "trial_id",
    "status",
    "ratio",
    "channels_used",
    "se_widths",
    "seed",
    "best_val_acc",
    "test_acc",
    "test_track_acc",
    "epochs_run",
    "n_params",
    "macs",
    "cpu_ms_per_segment_b1",
    "cpu_ms_per_segment_b64",
    "on_front",
    "wall_s",
    "startup_s",
    "graphs_compiled",
    "gpu_mem_peak_gib",
    "device",
    "reused_from",
    "features",
    "split_level",
    "data",
    "checkpoint",
]


def read_board(path) -> pd.DataFrame:
    """A leaderboard CSV, trial ids as text (an id of digits only would read as a number)."""
    return pd.read_csv(path, dtype={"trial_id": str, "reused_from": str})


def study_trials(storage: Path, name: str) -> list:
    """The finished trials of the Optuna study a search persisted beside its experiment."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(storage / name / "optuna.journal")))
    study = optuna.load_study(study_name=name, storage=journal)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.fixture(scope="module")
def smoke_run(ray_session, tiny_shards, tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    results = tmp_path_factory.mktemp("results")
    space = load_space(SPACES / "smoke.yaml")
    mlruns = tmp_path_factory.mktemp("mlruns")
    run_search(
        space, tiny_shards, str(storage), str(results), verbose=0, mlflow_uri=f"file:{mlruns}"
    )
    return space, storage, results, mlruns


def test_smoke_search_writes_a_full_leaderboard(smoke_run):
    space, _, results, _ = smoke_run
    board = read_board(results / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == space.trials == 3
    assert list(board["rank"]) == [1, 2, 3]
    assert set(board["status"]) == {"completed"}
    assert board["best_val_acc"].is_monotonic_decreasing
    assert board["ratio"].between(2, 16).all()
    assert board["ratio"].nunique() == 3
    assert (board["epochs_run"] == 2).all()
    assert (board["device"] == "cpu").all()
    assert "--threads 1" in (results / "leaderboard.md").read_text()  # the trials' count
    assert board["test_track_acc"].between(0, 1).all()


def test_smoke_search_writes_markdown_table_and_plots(smoke_run):
    _, _, results, _ = smoke_run
    text = (results / "leaderboard.md").read_text()
    assert "## Top 10" in text and "python -m raysearch.train" in text
    table = pd.read_csv(results / "table_5_2_ratio.csv")
    assert table["seeds"].sum() == 3
    assert (results / "optimization_history.png").stat().st_size > 1000
    assert (results / "ratio_vs_accuracy.png").stat().st_size > 1000
    assert not list(results.glob(".*tmp"))  # atomic writes leave no temporary files


def test_leaderboard_cli_rebuilds_the_same_board(smoke_run, tmp_path):
    space, storage, results, _ = smoke_run
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raysearch.leaderboard",
            str(storage / space.name),
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    again = read_board(tmp_path / "leaderboard.csv")
    first = read_board(results / "leaderboard.csv")
    pd.testing.assert_frame_equal(again.drop(columns="wall_s"), first.drop(columns="wall_s"))
    rebuilt = (tmp_path / "leaderboard.md").read_text()
    assert "--shards" in rebuilt  # kept in the experiment
    assert f"Search space `{os.path.basename(space.source)}`" in rebuilt


def test_the_classical_baseline_is_beside_every_output_of_the_search(smoke_run, tmp_path):
    """The search ends with the baseline of its shards: baseline.csv, the row marked baseline
    in leaderboard.md and in the ratio table, the best configuration's margin; a rebuild
    (``raysearch leaderboard``) reads it from the cache beside the shards."""
    space, storage, results, _ = smoke_run
    row = pd.read_csv(results / "baseline.csv").iloc[0]
    assert row["kind"] == "baseline" and row["method"] == "MFCC + logistic regression"
    assert 0 <= row["test_track_acc"] <= 1 and row["split_level"] == "track"
    text = (results / "leaderboard.md").read_text()
    label = f"baseline: MFCC + logistic regression (C={row['C']:g})"
    assert f"| baseline | {label} | not searched |" in text
    assert "## Classical baseline" in text
    assert "the classical baseline by" in text or "does not beat the classical baseline" in text
    table = pd.read_csv(results / "table_5_2_ratio.csv")
    assert table.iloc[-1]["ratio r"] == label
    assert (Path(row["shards"]) / "baseline.json").exists()
    done = subprocess.run(
        [sys.executable, "-m", "raysearch.leaderboard", str(storage / space.name),
         "--results", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "baseline.csv"), pd.read_csv(results / "baseline.csv")
    )
    assert f"| baseline | {label} |" in (tmp_path / "leaderboard.md").read_text()


def test_the_ensemble_and_the_networks_costs_are_beside_the_search(smoke_run):
    """Every completed trial kept its predictions beside its checkpoint; the search ends
    with the ensemble of its networks (ensemble.json in the results and beside the
    experiment, its row, the summary's line) and the networks' costs, timed once."""
    import json

    from raysearch.results.ensemble import score
    from raysearch.training.predictions import load_predictions

    space, storage, results, _ = smoke_run
    board = read_board(results / "leaderboard.csv")
    for _, row in board.iterrows():  # the best-by-validation weights' figures, kept
        kept = load_predictions(row["checkpoint"])
        test = score(kept["test"].probs, kept["test"].label, kept["test"].track)
        assert test.segment_acc == pytest.approx(row["test_acc"], abs=1e-9)
        assert test.track_acc == pytest.approx(row["test_track_acc"], abs=1e-9)
    ensemble = json.loads((results / "ensemble.json").read_text())
    kept = storage / space.name / "_raysearch" / "ensemble.json"
    assert ensemble == json.loads(kept.read_text())
    assert ensemble["members"][0]["trial_id"] == board.iloc[0]["trial_id"]  # from the best
    originals = board.loc[board["reused_from"].isna(), "trial_id"]  # a twin is its original
    assert set(ensemble["candidates"]) == set(originals)
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1)
    assert ensemble["val"]["track_acc"] >= ensemble["best_trial"]["val"]["track_acc"]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["ensemble"]["size"] == len(ensemble["members"])
    text = (results / "leaderboard.md").read_text()
    assert "| ensemble | ensemble of " in text and "## Ensemble of the search's networks" in text
    assert "ensemble of" in pd.read_csv(results / "table_5_2_ratio.csv").iloc[-2]["ratio r"]
    assert (board["macs"] > 0).all() and (board["cpu_ms_per_segment_b64"] > 0).all()
    assert board["on_front"].any()
    assert (storage / space.name / "_raysearch" / "network_cost.json").exists()
    assert (results / "accuracy_vs_parameters.png").stat().st_size > 1000


def test_a_rebuilt_leaderboard_keeps_the_ensemble_of_the_same_networks(smoke_run, tmp_path):
    import json

    from raysearch.commands import leaderboard

    space, storage, results, _ = smoke_run
    assert leaderboard.main([str(storage / space.name), "--results", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / "ensemble.json").read_text())
    assert rebuilt == json.loads((results / "ensemble.json").read_text())
    assert "| ensemble | ensemble of " in (tmp_path / "leaderboard.md").read_text()


def test_every_trial_folder_has_tensorboard_events(smoke_run):
    """README: ``tensorboard --logdir STORAGE/NAME`` shows every trial (Tune writes the files)."""
    space, storage, _, _ = smoke_run
    folders = [p for p in (storage / space.name).iterdir() if p.is_dir() and "run_trial" in p.name]
    assert len(folders) == space.trials
    for folder in folders:
        events = list(folder.glob("events.out.tfevents.*"))
        assert events, f"{folder}: no TensorBoard event file"
        assert any(tag.endswith("val_acc") for tag in scalar_tags(events[0]))


def scalar_tags(path: Path) -> set[str]:
    """The scalar tags of a TensorBoard event file (TFRecord framing: length, its CRC, the
    Event protobuf, its CRC), read with the protobufs tensorboardX ships."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    tags, data = set(), path.read_bytes()
    position = 0
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        event = Event.FromString(data[position + 12 : position + 12 + length])
        tags.update(value.tag for value in event.summary.value)
        position += 12 + length + 4
    return tags


def test_the_optuna_study_is_persisted_beside_the_experiment(smoke_run):
    space, storage, results, _ = smoke_run
    trials = study_trials(storage, space.name)
    assert len(trials) == space.trials
    board = read_board(results / "leaderboard.csv")
    assert sorted(t.value for t in trials) == sorted(board["best_val_acc"])
    assert sorted(t.params["ratio"] for t in trials) == sorted(board["ratio"])


def test_mlflow_gets_every_trial_with_params_metrics_and_checkpoint(smoke_run):
    from mlflow.tracking import MlflowClient

    space, _, results, mlruns = smoke_run
    client = MlflowClient(f"file:{mlruns}")
    experiment = client.get_experiment_by_name(space.name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == space.trials
    board = read_board(results / "leaderboard.csv")
    assert sorted(float(r.data.params["ratio"]) for r in runs) == sorted(board["ratio"])
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert len(history) == 2  # one value per epoch
        files = _artifacts(client, run.info.run_id)
        assert any(f.endswith("model.pt") for f in files), files


def _artifacts(client, run_id: str, path: str = "") -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def test_existing_experiment_needs_resume(smoke_run, tiny_shards, tmp_path):
    space, storage, _, _ = smoke_run
    with pytest.raises(SpaceError, match="pass --resume"):
        run_search(space, tiny_shards, str(storage), str(tmp_path))


def test_concurrency_fits_the_cluster():
    space = load_space(SPACES / "ratio.yaml").with_overrides(trials_per_gpu=4)  # 1 CPU, 1/4 GPU
    assert concurrency_for(space, cpus=2) == 2
    assert concurrency_for(space, cpus=16, gpus=1) == 4
    assert concurrency_for(space, cpus=64, gpus=8) == 32
    assert concurrency_for(space, cpus=0.5) == 1


def test_trials_that_compile_get_a_process_each():
    """A finished trial's process runs the next one, except where Tune cannot reset it (a
    worker group) or where the trials compile: reset actors of compiled trials segfaulted on an
    H100 (results/gpu-h100-synthetic-2/)."""
    space = load_space(SPACES / "ratio.yaml")  # train.compile: auto
    assert reuses_actors(space, use_gpu=False, worker_group=False)  # auto: eager on CPUs
    assert not reuses_actors(space, use_gpu=True, worker_group=False)

    def compiled(mode: str):
        return parse_space({**space.raw, "train": {**space.raw["train"], "compile": mode}}, mode)

    assert reuses_actors(compiled("off"), use_gpu=True, worker_group=False)
    assert not reuses_actors(compiled("off"), use_gpu=True, worker_group=True)
    assert not reuses_actors(compiled("default"), use_gpu=False, worker_group=False)


def _completed(results: Path) -> pd.DataFrame:
    path = results / "leaderboard.csv"
    if not path.exists():
        return pd.DataFrame()
    board = read_board(path)
    return board[board["status"] == "completed"]


def _killed_search(
    ray_session, shards, tmp_path, name, trials, completed, until, stop=signal.SIGKILL
):
    """``python -m raysearch.tune`` on the smoke space renamed ``name`` (its ``trials: 3``
    replaced by ``trials``), sent ``stop`` (SIGKILL to its whole process group, SIGINT to the
    driver alone, as Ctrl+C would) once ``completed(results)`` reaches ``until``; returns
    the command (for ``--resume``), the results folder and the storage."""
    space_file = tmp_path / f"{name}.yaml"
    space_file.write_text(
        (SPACES / "smoke.yaml")
        .read_text()
        .replace("trials: 3", trials)
        .replace("name: smoke", f"name: {name}")
    )
    results, storage = tmp_path / "results", tmp_path / "storage"
    address = ray_session.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "raysearch.tune", "--space", str(space_file), "--shards",
               shards, "--storage", str(storage), "--results", str(results),
               "--address", address]  # fmt: skip
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while completed(results) < until and driver.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert driver.poll() is None, "the driver ended before it could be killed"
    time.sleep(1.5)  # past the 1 s experiment-state save after a trial ends
    if stop == signal.SIGKILL:
        os.killpg(driver.pid, signal.SIGKILL)
    else:
        driver.send_signal(stop)
    driver.wait(timeout=120)
    return command, results, storage


KILLED_SPACE = """
name: killed
trials: 6
sampler: tpe
seed: 0
train: {epochs: 2, batch_size: 16, lr: 0.003, patience: 0, max_train_segments: 64}
model: {channels: [8, 8, 8, 8, 8]}
resources: {workers: 1, cpu: 1, gpu: 0}
initial_points: [{ratio: 2}, {ratio: 8}]
params:
  ratio: {type: float, low: 2, high: 8}
"""


def test_a_driver_killed_five_times_at_random_loses_nothing(ray_session, tiny_shards, tmp_path):
    """SIGKILLs at seeded moments, some inside the searcher's save (the journal written,
    Tune's state not), each followed by --resume; meanwhile a second search of the same name
    and a second driver are refused without touching the experiment."""
    from tests.kill_loop import KillLoop, check_nothing_lost, study_of

    (tmp_path / "killed.yaml").write_text(KILLED_SPACE)
    results, storage = tmp_path / "results", tmp_path / "storage"
    address = ray_session.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "raysearch.tune", "--space", str(tmp_path / "killed.yaml"),
               "--shards", tiny_shards, "--storage", str(storage), "--results", str(results),
               "--address", address, "--no-baseline"]  # fmt: skip
    journal = storage / "killed" / "optuna.journal"

    def second_drivers(loop) -> None:
        before, files = journal.read_bytes(), set(results.glob("*")) if results.exists() else set()
        loop.refused["new"] = loop.try_command()
        loop.refused["resume"] = loop.try_command("--resume")
        assert journal.read_bytes().startswith(before)  # never truncated, only grown
        assert all(path.exists() for path in files)  # nothing of the results removed

    def checkpoints_gone(loop) -> None:
        """What a kill at the wrong moment leaves: the checkpoints the saved state names
        deleted (Tune keeps one per trial and deletes the older as a newer one registers)."""
        done = (
            set(_completed(results)["trial_id"])
            if (results / "leaderboard.csv").exists()
            else set()
        )
        loop.refused["dropped"] = 0
        for trial in (storage / "killed").glob("run_trial_*"):
            if trial.name.split("_")[2] not in done:
                for checkpoint in trial.glob("checkpoint_*"):
                    shutil.rmtree(checkpoint)
                    loop.refused["dropped"] += 1

    loop = KillLoop(command, tmp_path, kills=5, seed=3, before_last=checkpoints_gone)
    last = loop.run(while_running=second_drivers)
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    assert len(loop.killed_at) == 5 and {k for k, _ in loop.killed_at} == {
        "inside a save",
        "at random",
    }
    new, resume = loop.refused["new"], loop.refused["resume"]
    assert new.returncode == 2 and new.stderr.count("\n") == 1
    assert "an experiment of this name exists" in new.stderr
    assert resume.returncode == 2 and resume.stderr.count("\n") == 1
    assert "another driver runs this experiment (host " in resume.stderr
    if loop.refused["dropped"]:  # a trial whose checkpoint is gone starts over, not fails
        assert "does not exist on storage anymore" in last.stdout + last.stderr
        assert "this trial starts over" in last.stdout + last.stderr
    # a snapshot per checkpoint is expected, and Ray's warning about it is silenced
    assert "snapshotting has been triggered" not in last.stdout + last.stderr

    from ray.tune import ExperimentAnalysis

    from tests.kill_loop import trial_errors

    board = read_board(results / "leaderboard.csv")
    assert "error" not in set(board["status"]), trial_errors(str(storage / "killed"))
    trials = {t.trial_id for t in ExperimentAnalysis(str(storage / "killed")).trials}
    space = load_space(tmp_path / "killed.yaml")
    check_nothing_lost(board, trials, study_of(journal, "killed"), space, tiny_shards)
    # every driver's run is in the search's running time (Tune's sync of the experiment's
    # top-level .json files used to put a stale copy over those of killed drivers)
    assert json.loads((results / "summary.json").read_text())["runs"] == 6

    changed = subprocess.run(
        command + ["--resume", "--trials", "5"], capture_output=True, text=True, timeout=120
    )
    assert changed.returncode == 2
    assert changed.stderr.strip() == (
        "error: --trials cannot change on --resume: the experiment keeps the space it started "
        "with (start another with --name to change it)"
    )


def test_an_interrupted_search_says_so_and_its_resume_adds_up_the_running_time(
    ray_session, tiny_shards, tmp_path
):
    import json

    def completed(results: Path) -> int:
        board = results / "leaderboard.csv"
        return int((read_board(board)["status"] == "completed").sum()) if board.exists() else 0

    command, results, storage = _killed_search(
        ray_session, tiny_shards, tmp_path, "stopped", "trials: 4", completed, 1, signal.SIGINT
    )
    first = (tmp_path / "first.log").read_text()
    assert "interrupted after" in first and "leaderboard so far" in first
    assert "**Not finished**" in (results / "leaderboard.md").read_text()
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["runs"] == 2 and summary["trials"]["total"] == 4
    runs = json.loads((storage / "stopped" / "_raysearch" / "runs.json").read_text())
    assert summary["wall_s"] == pytest.approx(
        sum(r["last_seen"] - r["started"] for r in runs), abs=0.1
    )
    gap = runs[1]["started"] - runs[0]["last_seen"]
    assert summary["wall_s"] < runs[1]["last_seen"] - runs[0]["started"] - gap + 0.1
    assert "**Not finished**" not in (results / "leaderboard.md").read_text()


def test_resume_of_a_search_with_repeats(ray_session, tiny_shards, tmp_path):
    """Killed while a configuration's seeds are half done, a search with repeats resumes and
    gives Optuna every configuration's mean: the Repeater's groups survive the resume."""

    def completed(results: Path) -> int:
        seeds = results / "leaderboard_seeds.csv"
        return int((read_board(seeds)["status"] == "completed").sum()) if seeds.exists() else 0

    command, results, storage = _killed_search(
        ray_session, tiny_shards, tmp_path, "repeats", "trials: 2\nrepeats: 2", completed, until=1
    )
    seeds = results / "leaderboard_seeds.csv"
    assert 1 <= completed(results) < 4

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "not in group" not in resumed.stdout + resumed.stderr
    board = read_board(seeds)
    assert len(board) == 4 and set(board["status"]) == {"completed"}
    told = {t.params["ratio"]: t.value for t in study_trials(storage, "repeats")}
    means = board.groupby("ratio")["best_val_acc"].mean().to_dict()
    assert told == pytest.approx(means)


def test_gpu_where_none_exists_stops_before_any_trial(ray_session, tiny_shards, tmp_path):
    address = ray_session.get_runtime_context().gcs_address
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "raysearch.tune", "--space", "smoke", "--gpu", "--shards",
         tiny_shards, "--storage", str(tmp_path), "--results", str(tmp_path / "results"),
         "--address", address],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --gpu: this Ray cluster has no GPU and cannot launch one")
    assert not list(tmp_path.glob("smoke/run_trial_*")), "a trial started"
    assert time.time() - started < 120


def test_a_killed_trial_is_retried_from_its_last_checkpoint(ray_session, tiny_shards, tmp_path):
    """SIGKILL the trial's process after its first epoch: Tune retries it, and the retry goes
    on from the checkpoint the first epoch left instead of starting at epoch 1 again."""
    import json

    space_file = tmp_path / "retry.yaml"
    space_file.write_text(
        (SPACES / "smoke.yaml")
        .read_text()
        .replace("name: smoke", "name: retry")
        .replace("trials: 3", "trials: 1")
        .replace("epochs: 2", "epochs: 5")
        .replace("max_train_segments: 64", "max_train_segments: 240")
    )
    storage = tmp_path / "storage"
    address = ray_session.get_runtime_context().gcs_address
    log = open(tmp_path / "retry.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "raysearch.tune", "--space", str(space_file), "--shards",
         tiny_shards, "--storage", str(storage), "--results", str(tmp_path / "results"),
         "--address", address],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline, killed = time.time() + 240, False
    while time.time() < deadline and driver.poll() is None and not killed:
        time.sleep(0.2)
        reports = [json.loads(line) for f in storage.glob("retry/*/result.json")
                   for line in f.read_text().splitlines() if line.strip()]  # fmt: skip
        if reports and reports[-1]["epoch"] >= 1 and list(storage.glob("retry/*/checkpoint_*")):
            killed = _kill_trial_processes() > 0
    assert killed, (tmp_path / "retry.log").read_text()[-3000:]
    assert driver.wait(timeout=300) == 0, (tmp_path / "retry.log").read_text()[-3000:]
    (result,) = storage.glob("retry/*/result.json")
    epochs = [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line]
    assert epochs.count(1) == 1, epochs  # the retry did not start over
    assert epochs[-1] == 5
    board = read_board(tmp_path / "results" / "leaderboard.csv")
    assert list(board["status"]) == ["completed"] and board.loc[0, "epochs_run"] == 5


def _kill_trial_processes() -> int:
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("ray::run_trial"):  # a trial actor (its trainable class)
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
    return killed


def twin_space(name: str, ratios: list[float], **settings):
    """A small ratio space whose first points are ``ratios`` (31.43 and 32 build the same
    network on its channels), 2 epochs of 64 segments; ``settings`` add or replace keys."""
    from raysearch.search.space import parse_space

    raw = {
        "name": name,
        "trials": len(ratios),
        "concurrency": 1,
        "train": {"epochs": 2, "batch_size": 16, "patience": 0, "max_train_segments": 64},
        "model": {"channels": [8, 16, 32, 64, 32]},
        "resources": {"cpu": 1, "gpu": 0},
        "initial_points": [{"ratio": r} for r in ratios],
        "params": {"ratio": {"type": "float", "low": 2, "high": 64, "log": True}},
        **settings,
    }
    return parse_space(raw, name)


def test_the_same_network_is_trained_once(ray_session, tiny_shards, tmp_path):
    """r = 31.43 and r = 32 build the same network on these channels: the second trial reports
    the first one's results instead of training."""
    space = twin_space("dedup", [31.43, 32])
    results = tmp_path / "results"
    storage = str(tmp_path / "storage")
    run_search(space, tiny_shards, storage, str(results), verbose=0, baseline=False)
    assert not (results / "baseline.csv").exists()  # tune --no-baseline
    board = read_board(results / "leaderboard.csv").set_index("ratio")
    first, second = board.loc[31.43], board.loc[32.0]
    assert first["se_widths"] == second["se_widths"]
    assert second["reused_from"] == first["trial_id"]
    assert second["test_acc"] == first["test_acc"] and second["status"] == "completed"
    assert second["checkpoint"] == first["checkpoint"]
    assert second["wall_s"] < first["wall_s"] / 2


def test_a_network_running_is_not_started_again(ray_session, tiny_shards, tmp_path):
    """r = 31.43 and r = 32 build the same network and come first, two trials at a time: the
    second is held back while the first trains, r = 8 takes its place, and once the first
    ends the held one replays its reports. Optuna still gets all three results."""
    # ASHA stops a trial at its last epoch (t = max_t): nothing after that report runs
    asha = {"type": "asha", "grace_period": 2}
    space = twin_space("twins", [31.43, 32, 8], concurrency=2, scheduler=asha)
    storage, results = tmp_path / "storage", tmp_path / "results"
    run_search(space, tiny_shards, str(storage), str(results), verbose=0)
    board = read_board(results / "leaderboard.csv").set_index("ratio")
    assert board.loc[31.43, "se_widths"] == board.loc[32.0, "se_widths"]
    assert board.loc[32.0, "reused_from"] == board.loc[31.43, "trial_id"]
    assert board["reused_from"].notna().sum() == 1
    assert set(board["status"]) == {"completed"}
    told = {t.params["ratio"]: t.value for t in study_trials(storage, "twins")}
    assert told == {r: board.loc[r, "best_val_acc"] for r in (31.43, 32.0, 8.0)}


def test_twins_across_repeats_wait_and_replay(ray_session, tiny_shards, tmp_path):
    """Two seeds of r = 31.43 and of r = 32, three trials at a time: r = 32's seed-s run is the
    same network as r = 31.43's seed-s run (the seed is part of a network), so both wait while
    those train and then replay them. Optuna gets each configuration's mean over the seeds."""
    resources = {"cpu": 0.5, "gpu": 0}  # three fit at once on the two CPUs
    space = twin_space("repeat-twins", [31.43, 32], repeats=2, concurrency=3, resources=resources)
    storage, results = tmp_path / "storage", tmp_path / "results"
    run_search(space, tiny_shards, str(storage), str(results), verbose=0)
    board = read_board(results / "leaderboard_seeds.csv").set_index(["ratio", "seed"])
    assert len(board) == 4 and set(board["status"]) == {"completed"}
    for seed in (0, 1):  # without the wait, the third trial would train beside its twin
        assert board.loc[(32.0, seed), "reused_from"] == board.loc[(31.43, seed), "trial_id"]
    told = {t.params["ratio"]: t.value for t in study_trials(storage, "repeat-twins")}
    mean = board.xs(31.43, level="ratio")["best_val_acc"].mean()
    assert told == pytest.approx({31.43: mean, 32.0: mean})


def test_a_twin_of_a_stopped_trial_is_stopped_where_it_was(ray_session, tiny_shards, tmp_path):
    """ASHA stops r = 31.43 after its first epoch (a learning rate that diverges, against r = 8's
    that learns); r = 32, the same network, replays that epoch from the partial record and is
    stopped there too, without training. Optuna is told both."""
    from raysearch.search import finished_networks as networks
    from raysearch.search.run import TrialNetwork
    from raysearch.training.data import model_config_for

    asha = {"type": "asha", "grace_period": 1, "reduction_factor": 2}
    points = [{"ratio": 8, "lr": 0.001}, {"ratio": 31.43, "lr": 3.0}, {"ratio": 32, "lr": 3.0}]
    space = twin_space(
        "stopped-twin",
        [],
        trials=3,
        metric="val_loss",
        mode="min",
        scheduler=asha,
        train={"epochs": 3, "batch_size": 16, "patience": 0, "max_train_segments": 64},
        initial_points=points,
        params={
            "ratio": {"type": "float", "low": 2, "high": 64, "log": True},
            "lr": {"type": "float", "low": 1e-4, "high": 3.0, "log": True},
        },
    )
    storage, results = tmp_path / "storage", tmp_path / "results"
    run_search(space, tiny_shards, str(storage), str(results), verbose=0)
    board = read_board(results / "leaderboard.csv").set_index("ratio")
    stopped, twin = board.loc[31.43], board.loc[32.0]
    assert board.loc[8.0, "status"] == "completed"
    assert stopped["status"] == twin["status"] == "stopped early"
    assert twin["reused_from"] == stopped["trial_id"]  # its last report was a replayed one
    assert twin["best_val_acc"] == stopped["best_val_acc"] and twin["epochs_run"] == 1
    key = TrialNetwork(space, model_config_for(tiny_shards), tiny_shards)(points[2])
    partial = networks.lookup(str(storage / space.name), key, partial=True)
    assert partial["trial_id"] == stopped["trial_id"] and len(partial["reports"]) == 1
    told = {t.params["ratio"]: t.value for t in study_trials(storage, "stopped-twin")}
    assert told[32.0] == told[31.43]


def test_a_twin_of_a_stopped_trial_trains_on_when_not_stopped(ray_session, tiny_shards, tmp_path):
    """A partial record (planted here: one epoch of an earlier trial) is reported again; no
    scheduler stops the trial, so it trains from the start, reports only the epochs after the
    replayed one, and leaves the whole network's record."""
    import json

    from raysearch.search import finished_networks as networks
    from raysearch.search.run import TrialNetwork
    from raysearch.training.data import model_config_for

    space = twin_space("catch-up", [32])
    storage, results = tmp_path / "storage", tmp_path / "results"
    experiment = str(storage / space.name)
    key = TrialNetwork(space, model_config_for(tiny_shards), tiny_shards)({"ratio": 32})
    planted = {"epoch": 1, "val_acc": 0.0123, "best_val_acc": 0.0123, "val_loss": 9.0}
    networks.Record(experiment, key, "earlier").keep_partial([planted])
    run_search(space, tiny_shards, str(storage), str(results), verbose=0)
    (result_file,) = (storage / space.name).glob("*/result.json")
    reports = [json.loads(line) for line in result_file.read_text().splitlines()]
    assert [r["epoch"] for r in reports] == [1, 2]
    assert reports[0]["val_acc"] == 0.0123 and reports[0]["reused_from"] == "earlier"
    assert "reused_from" not in reports[1] and "test_acc" in reports[1]
    kept = networks.lookup(experiment, key)["reports"]
    assert [r["epoch"] for r in kept] == [1, 2] and kept[0]["val_acc"] != 0.0123  # trained


def test_worker_group_trials_under_asha(ray_session, tiny_shards, tmp_path):
    """Trials in Ray Train worker groups (``workers > 1`` takes this path) under ASHA, which
    stops each at its last epoch: the next trial still starts (a stopped worker-group trial's
    actor cannot be reused) and r = 32 replays r = 31.43, recorded by rank 0."""
    asha = {"type": "asha", "grace_period": 2}
    space = twin_space("group-asha", [31.43, 32], scheduler=asha)
    results, storage = tmp_path / "results", tmp_path / "storage"
    run_search(space, tiny_shards, str(storage), str(results), verbose=0, worker_group=True)
    board = read_board(results / "leaderboard.csv").set_index("ratio")
    assert set(board["status"]) == {"completed"}
    assert board.loc[32.0, "reused_from"] == board.loc[31.43, "trial_id"]
    # rank 0 kept the trained network's predictions beside its checkpoint; the ensemble
    # (one network: the twin is the same one) was built from them
    from raysearch.training.predictions import load_predictions

    kept = load_predictions(board.loc[31.43, "checkpoint"])
    assert len(kept["val"].label) > 0 and len(kept["test"].label) > 0
    ensemble = json.loads((results / "ensemble.json").read_text())
    assert [m["trial_id"] for m in ensemble["members"]] == [board.loc[31.43, "trial_id"]]
    # read back from the experiment folder (raysearch leaderboard EXPERIMENT), the same place
    from raysearch.results.records import records_from_experiment

    again = {r.trial_id: r.checkpoint for r in records_from_experiment(str(storage / space.name))}
    assert again[board.loc[31.43, "trial_id"]] == board.loc[31.43, "checkpoint"]


def test_optuna_dashboard_serves_the_study(smoke_run):
    """optuna-dashboard, started on the journal beside the experiment, answers with the study."""
    import json
    import shutil
    import urllib.request

    from tests.local_cluster import free_port

    space, storage, _, _ = smoke_run
    port = free_port()
    dashboard = subprocess.Popen(
        [shutil.which("optuna-dashboard") or "optuna-dashboard",
         str(storage / space.name / "optuna.journal"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, studies = time.time() + 60, None
        while studies is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as reply:
                    studies = json.loads(reply.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == [space.name]
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}") as reply:
            trials = json.loads(reply.read())["trials"]
        assert [t["state"] for t in trials] == ["Complete"] * space.trials
    finally:
        dashboard.kill()


def test_predict_loads_the_best_checkpoint_the_leaderboard_names(smoke_run, tmp_path):
    from tests.conftest import write_clip

    _, _, results, _ = smoke_run
    best = read_board(results / "leaderboard.csv").iloc[0]
    clip = write_clip(tmp_path / "song.wav", 7.0)
    done = subprocess.run(
        [sys.executable, "-m", "raysearch.predict", best["checkpoint"], str(clip)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{clip}: ")


def test_a_time_budget_that_ends_trials_before_they_report(ray_session, tiny_shards, tmp_path):
    """Trials the budget ends before their first report have no metric: the live table (sorted
    by the metric) and the leaderboard both cope, and the trials that reported are ranked."""
    from raysearch.search.space import parse_space

    raw = {
        "name": "budget",
        "trials": 4,
        "concurrency": 2,
        "train": {"epochs": 4, "batch_size": 16, "patience": 0, "max_train_segments": 128},
        "model": {"channels": [8, 16, 32, 64, 32]},
        "resources": {"cpu": 1, "gpu": 0},
        "initial_points": [{"ratio": 2}, {"ratio": 4}, {"ratio": 8}, {"ratio": 16}],
        "params": {"ratio": {"type": "float", "low": 2, "high": 64, "log": True}},
    }
    results = tmp_path / "results"
    started = time.time()
    run_search(
        parse_space(raw, "budget"),
        tiny_shards,
        str(tmp_path / "storage"),
        str(results),
        verbose=1,
        time_budget_s=3,
    )
    assert time.time() - started < 120
    board = read_board(results / "leaderboard.csv")
    assert 1 <= len(board) < 4  # the budget ended the search before every trial started
    assert set(board["status"]) <= {"completed", "stopped early", "no result"}
    reported = board["best_val_acc"].notna()
    assert (board["status"] == "no result").equals(~reported)
    assert list(reported) == sorted(reported, reverse=True)  # trials without it rank last


def test_the_main_command_runs_on_the_profiles_synthetic_default(
    ray_session, tmp_path, monkeypatch, capsys
):
    """README's main command (``raysearch tune --space ratio --profile cpu``) through its own
    code: no --shards, so the profile's synthetic set is generated into the cache and prepared
    with the profile's features; here a smaller set, one trial of one epoch."""
    import dataclasses
    import json

    from raysearch.commands import tune
    from raysearch.data.defaults import SyntheticSet
    from raysearch.search.profiles import PROFILES

    cache, results = tmp_path / "cache", tmp_path / "results"
    monkeypatch.setenv("RAYSEARCH_CACHE", str(cache))
    smaller = SyntheticSet(clips_per_genre=10, duration=3.0)
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], synthetic=smaller))
    argv = ["--space", "ratio", "--profile", "cpu", "--trials", "1", "--epochs", "1",
            "--storage", str(tmp_path / "storage"), "--results", str(results)]  # fmt: skip
    assert tune.main(argv) == 0
    (shards,) = (cache / "shards").iterdir()
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["features"] == "mel" and manifest["shape"] == [32, 129]  # the profile's
    assert manifest["input"]["synthetic"]["clips_per_genre"] == 10
    assert (cache / "synthetic-c10-d3-s0" / "synthetic.json").exists()
    board = (results / "leaderboard.md").read_text()
    assert "Leaderboard: ratio-cpu" in board
    assert "Data: synthetic mini-GTZAN (10 clips x 3 s per genre, seed 0)" in board
    assert "--channels 16,32,64,128,64" in board  # the profile's half width, in the best command
    assert "| baseline | baseline: MFCC + logistic regression" in board
    # one completed trial: the ensemble is that trial, and says so
    assert "- Ensemble: One completed trial with predictions: the ensemble is that trial" in board
    capsys.readouterr()
    # raysearch baseline --profile cpu finds the same shards and the baseline the search cached
    from raysearch.commands import baseline

    assert baseline.main(["--profile", "cpu"]) == 0
    shown = capsys.readouterr().out
    assert f"on {shards}" in shown and f"cached in {shards / 'baseline.json'}" in shown
    assert "computed in" not in shown and "32 mel bands" in shown
    # the profile sizes the default: with --shards it is refused, in one line
    refused = ["--space", "ratio", "--profile", "cpu", "--shards", str(shards)]
    assert tune.main(refused) == 2
    assert "--profile sizes the synthetic default" in capsys.readouterr().err
    # a resumed search keeps its space: --trials is refused
    again = argv + ["--resume", "--trials", "2"]
    assert tune.main(again) == 2
    assert "--trials cannot change on --resume" in capsys.readouterr().err
