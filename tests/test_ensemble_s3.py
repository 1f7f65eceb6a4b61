"""The ensemble of a search whose storage is a bucket (moto's S3 server) and whose driver was
stopped (SIGINT) and resumed: the trials' predictions in the bucket beside their checkpoints,
the ensemble built at the resumed end from the trials of both driver runs, ``raysearch
ensemble s3://...`` building it again, ``raysearch predict ensemble.json`` loading its members
from the bucket."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.s3_server import BUCKET, s3_and_ray

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
STORAGE = f"s3://{BUCKET}/ensemble-storage"
NAME = "bucket_ensemble"


@pytest.fixture(scope="module")
def s3_ray():
    """The S3 server, its environment in this process (and so in the commands it starts),
    and a local Ray started after it; all gone at the end, the environment restored."""
    with s3_and_ray() as both:
        yield both


def _completed(results: Path) -> int:
    board = results / "leaderboard.csv"
    return int((pd.read_csv(board)["status"] == "completed").sum()) if board.exists() else 0


def test_the_ensemble_of_a_resumed_search_in_a_bucket(tiny_shards, s3_ray, tmp_path, capsys):
    from raysearch.commands import ensemble, predict
    from raysearch.storage import exists, read_text
    from tests.conftest import write_clip

    s3, ray = s3_ray
    space = tmp_path / f"{NAME}.yaml"
    space.write_text((SPACES / "smoke.yaml").read_text().replace("name: smoke", f"name: {NAME}"))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "raysearch.tune", "--space", str(space),
               "--shards", tiny_shards, "--storage", STORAGE, "--results", str(results),
               "--address", ray.get_runtime_context().gcs_address, "--no-baseline"]  # fmt: skip
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while _completed(results) < 1 and driver.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert driver.poll() is None, "the driver ended before it could be stopped"
        time.sleep(1.5)  # past the experiment-state save after a trial ends
        driver.send_signal(signal.SIGINT)  # as Ctrl+C
        driver.wait(timeout=120)
    first = (tmp_path / "first.log").read_text()
    assert "ensemble and CPU times: left for the end of the search (not finished)" in first
    assert not (results / "ensemble.json").exists()
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    board = pd.read_csv(results / "leaderboard.csv", dtype={"trial_id": str, "reused_from": str})
    assert (board["status"] == "completed").all() and len(board) == 3
    kept = json.loads((results / "ensemble.json").read_text())
    originals = board.loc[board["reused_from"].isna()]
    assert sorted(kept["candidates"]) == sorted(originals["trial_id"])  # both driver runs'
    for checkpoint in originals["checkpoint"]:
        assert checkpoint.startswith(f"{STORAGE}/{NAME}/")
        assert exists(f"{checkpoint}/predictions.npz")
    assert json.loads(read_text(f"{STORAGE}/{NAME}/_raysearch/ensemble.json")) == kept
    assert exists(f"{STORAGE}/{NAME}/_raysearch/network_cost.json")
    assert "ensemble" in json.loads((results / "summary.json").read_text())

    capsys.readouterr()
    rebuilt = tmp_path / "rebuilt"
    assert ensemble.main([f"{STORAGE}/{NAME}", "--results", str(rebuilt)]) == 0
    assert json.loads((rebuilt / "ensemble.json").read_text())["members"] == kept["members"]
    pd.testing.assert_frame_equal(
        pd.read_csv(rebuilt / "leaderboard.csv").drop(columns="wall_s"),
        pd.read_csv(results / "leaderboard.csv").drop(columns="wall_s"),
    )  # the CPU times kept in the bucket, not measured again
    clip = write_clip(tmp_path / "song.wav", 7.0)
    capsys.readouterr()
    assert predict.main([str(results / "ensemble.json"), str(clip)]) == 0
    assert capsys.readouterr().out.startswith(f"{clip}: ")
