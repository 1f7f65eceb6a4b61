"""``raysearch train``'s command line (raysearch.commands.train): options into configs, what
it refuses in one line, what it leaves to a traceback, and its main end to end."""

from __future__ import annotations

import json

import pytest

from raysearch.commands import train as command
from raysearch.data.discover import DataError
from raysearch.runtime import RayOptions


def test_masks_without_a_width_are_refused_before_anything_starts(capsys, monkeypatch):
    monkeypatch.setattr(RayOptions, "connect", lambda self: pytest.fail("Ray was started"))
    assert command.main(["--freq-masks", "2", "--shards", "/nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--freq-masks 2 masks nothing without --freq-width" in err
    assert command.main(["--time-masks", "1", "--shards", "/nowhere"]) == 2
    assert "--time-width" in capsys.readouterr().err
    model, train = command.configs_from_args(
        command.build_parser().parse_args(["--freq-masks", "2", "--freq-width", "27"])
    )
    assert (train.freq_masks, train.freq_width) == (2, 27)


def _no_ray_no_shards(monkeypatch, run):
    monkeypatch.setattr(RayOptions, "connect", lambda self: None)
    monkeypatch.setattr("raysearch.training.data.sized_like", lambda model, shards: model)
    monkeypatch.setattr("raysearch.training.runner.run", run)


def test_a_users_mistake_is_one_line_and_a_bug_keeps_its_traceback(capsys, monkeypatch):
    def missing(*args):
        raise DataError("/shards: no manifest.json")

    _no_ray_no_shards(monkeypatch, missing)
    assert command.main(["--shards", "/shards"]) == 2
    assert capsys.readouterr().err == "error: /shards: no manifest.json\n"

    def bug(*args):
        raise ValueError("an internal mistake")

    _no_ray_no_shards(monkeypatch, bug)
    with pytest.raises(ValueError, match="an internal mistake"):
        command.main(["--shards", "/shards"])


def test_a_metric_the_run_did_not_report_shows_as_missing():
    line = command.summary_line({"epochs_run": 3, "best_val_acc": 0.5, "device": "cpu"})
    assert "best val acc 0.500" in line
    assert "test segment acc n/a" in line and "test track acc n/a" in line
    assert "0.000" not in line


@pytest.mark.slow
def test_main_trains_and_writes_the_run_folder(ray_session, tiny_shards, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--shards", tiny_shards, "--out", str(out), "--epochs", "1", "--batch-size", "8",
            "--channels", "8,16,32,64,32", "--cpu", "--threads", "1"]  # fmt: skip
    assert command.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"run folder: {out}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert f"test track acc {summary['test_track_acc']:.3f}" in printed
    assert summary["train"]["torch_threads"] == 1 and summary["epochs_run"] == 1
    assert summary["data"].startswith("synthetic mini-GTZAN (10 clips x 6 s per genre")
    assert (out / "checkpoint" / "model.pt").exists() and (out / "metrics.csv").exists()
