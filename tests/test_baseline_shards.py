"""The baseline of real shards (the pipeline's, on a small synthetic set): computed from the
Parquet files, cached beside them and reused, and the ``raysearch baseline`` command."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

from raysearch.baseline.cache import CACHE_FILE
from raysearch.baseline.shards import baseline_or_warning, compute_baseline, shard_baseline
from raysearch.commands import baseline as command
from raysearch.training.data import load_splits


@pytest.fixture
def shards(ray_session, tiny_shards, tmp_path):
    """A copy of the session's shards without a cache (a search may have left one there)."""
    copy = shutil.copytree(tiny_shards, tmp_path / "shards")
    (copy / CACHE_FILE).unlink(missing_ok=True)
    return str(copy)


@pytest.mark.slow
def test_the_baseline_is_cached_beside_the_shards_and_reused(shards):
    manifest = json.loads(open(f"{shards}/manifest.json").read())
    result, reused = shard_baseline(shards)
    assert not reused
    assert result.test_segments == manifest["counts"]["segments"]["test"]
    assert result.test_tracks == manifest["counts"]["tracks"]["test"]
    assert result.train_segments == manifest["counts"]["segments"]["train"]
    assert (result.n_mfcc, result.mel_bands, result.n_features) == (20, 128, 42)  # stft shards
    assert 0.0 <= result.test_acc <= 1.0 and 0.0 <= result.test_track_acc <= 1.0
    assert result.val_acc == max(result.val_acc_by_c)
    cache = f"{shards}/{CACHE_FILE}"
    payload = json.loads(open(cache).read())
    assert payload["key"]["settings_hash"] == manifest["settings_hash"]
    assert payload["key"]["fingerprint"] == manifest["input"]["fingerprint"]
    again, reused = shard_baseline(shards)
    assert reused and again == result
    # reused means read from the file: a figure changed there comes back as it is
    payload["result"]["test_acc"] = 0.123
    open(cache, "w").write(json.dumps(payload))
    assert shard_baseline(shards)[0].test_acc == 0.123
    # shards made again (a new manifest) are not those the file was computed from
    manifest["created"] = "2000-01-01T00:00:00Z"
    open(f"{shards}/manifest.json", "w").write(json.dumps(manifest))
    fresh, reused = shard_baseline(shards)
    assert not reused and fresh.test_acc == result.test_acc
    assert shard_baseline(shards, recompute=True)[1] is False


@pytest.mark.slow
def test_the_splits_a_search_holds_give_the_parquet_files_result(shards):
    from_files = compute_baseline(shards)
    from_arrays = compute_baseline(shards, splits=load_splits(shards))
    timings = {"features_s": 0.0, "fit_s": 0.0}
    assert dataclasses.replace(from_files, **timings) == dataclasses.replace(from_arrays, **timings)


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_is_one_warning(shards):
    blocked = f"{shards}/{CACHE_FILE}"
    os.mkdir(blocked)  # a folder where the file would go
    lines = []
    result, reused = shard_baseline(shards, warn=lines.append)
    assert not reused and 0.0 <= result.test_track_acc <= 1.0
    assert len(lines) == 1 and lines[0].startswith(f"warning: baseline not cached at {blocked}")


@pytest.mark.slow
def test_a_failing_baseline_is_one_warning_never_an_exception(shards):
    shutil.rmtree(f"{shards}/segments/split=test")
    lines = []
    assert baseline_or_warning(shards, say=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith(f"warning: no classical baseline for {shards}")
    lines.clear()
    assert baseline_or_warning(shards.replace("shards", "nothing"), say=lines.append) is None
    assert len(lines) == 1 and "no manifest.json" in lines[0]


@pytest.mark.slow
def test_the_command_prints_it_alone_and_then_from_the_cache(shards, capsys):
    assert command.main(["--shards", shards]) == 0
    first = capsys.readouterr().out
    assert first.startswith("baseline: MFCC + logistic regression (C=")
    assert "split by track" in first and "test: segment " in first and "computed in" in first
    assert command.main(["--shards", shards, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["reused"] is True and payload["split_level"] == "track"
    assert f"track {payload['test_track_acc']:.3f}" in first


def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert command.main(["--shards", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no manifest.json" in err
    assert command.main(["--shards", str(tmp_path), "--profile", "cpu"]) == 2
    assert "--profile sizes the synthetic default" in capsys.readouterr().err


def test_python_m_raysearch_baseline_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "raysearch.baseline", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "usage: python -m raysearch.baseline" in done.stdout
