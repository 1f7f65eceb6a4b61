"""The search with every location in a bucket, end to end, against moto's S3 server (a real
HTTP endpoint; pyarrow, boto3 and every Ray worker reach it through ``AWS_ENDPOINT_URL``):
``prepare --out s3://`` from local audio (written, reused, refused and then overwritten with
other settings), ``tune --shards s3:// --storage s3://`` on the smoke space, a SIGKILL of the
driver and ``--resume`` from a fresh working directory and a fresh cache (as on a new head
after ``ray down``), the Optuna journal read from the bucket, ``leaderboard s3://`` and
``predict`` from the checkpoint URI the leaderboard names."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.s3_server import BUCKET, s3_and_ray

pytestmark = pytest.mark.slow
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
SHARDS = f"s3://{BUCKET}/shards"
SEARCH_SHARDS = f"s3://{BUCKET}/search-shards"
STORAGE = f"s3://{BUCKET}/storage"
NAME = "bucket"


@pytest.fixture(scope="module")
def s3_ray(tmp_path_factory):
    """The S3 server, its environment in this process, and a local Ray started after it (its
    workers inherit the environment); both gone at the end, the environment restored."""
    with s3_and_ray() as both:
        yield both


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    from raysearch.data import synth

    root = tmp_path_factory.mktemp("audio")
    return synth.generate(root, clips_per_genre=10, duration=6.0, seed=0, workers=2)


def _manifest(s3, prefix: str = "shards") -> dict:
    import json

    body = s3.client().get_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json")["Body"].read()
    return json.loads(body)


def test_prepare_writes_reuses_refuses_and_overwrites_shards_in_a_bucket(s3_ray, audio, capsys):
    from raysearch.commands import prepare

    s3, _ = s3_ray
    assert prepare.main(["--data", str(audio), "--out", SHARDS]) == 0
    first = [key for key in s3.keys(prefix="shards/") if key.endswith(".parquet")]
    assert {key.split("/")[2] for key in first} == {"split=train", "split=val", "split=test"}
    assert _manifest(s3)["features"] == "stft"
    capsys.readouterr()

    assert prepare.main(["--data", str(audio), "--out", SHARDS]) == 0
    assert "(up to date, nothing done)" in capsys.readouterr().out

    mel = ["--data", str(audio), "--out", SHARDS, "--features", "mel", "--n-mels", "32"]
    assert prepare.main(mel) == 2
    assert "holds shards made with other spectrogram / split settings" in capsys.readouterr().err
    assert prepare.main(mel + ["--overwrite"]) == 0
    assert _manifest(s3)["features"] == "mel"
    now = s3.keys(prefix="shards/")
    assert not set(first) & set(now), "files of the replaced shards are left in the bucket"
    assert not [key for key in now if "_outcomes" in key or ".raysearch-write-check" in key]


def _board(results: Path) -> pd.DataFrame:
    path = results / "leaderboard.csv"
    if not path.exists():
        return pd.DataFrame(columns=["status"])
    return pd.read_csv(path, dtype={"trial_id": str, "reused_from": str})


def _completed(results: Path) -> pd.DataFrame:
    board = _board(results)
    return board[board["status"] == "completed"]


@pytest.fixture(scope="module")
def resumed_search(s3_ray, audio, tmp_path_factory):
    """``tune`` on the bucket's shards and storage, SIGKILLed five times at seeded moments
    (some inside the searcher's save, when the bucket's journal is ahead of Tune's state) and
    resumed each time; while the first driver runs, a new search of the same name and a second
    driver are tried (refused); the last resume runs from another working directory with
    another cache (as on a new head after ``ray down``)."""
    from raysearch.commands import prepare
    from tests.kill_loop import KillLoop

    s3, ray = s3_ray
    assert (
        prepare.main(["--data", str(audio), "--out", SEARCH_SHARDS]) == 0
    )  # STFT, as in test_tune
    root = tmp_path_factory.mktemp("search")
    space = root / f"{NAME}.yaml"
    text = (SPACES / "smoke.yaml").read_text()
    space.write_text(text.replace("trials: 3", "trials: 4").replace("name: smoke", f"name: {NAME}"))
    first, second = root / "first", root / "second"
    for folder in (first, second):
        folder.mkdir()
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "raysearch.tune", "--space", str(space),
               "--shards", SEARCH_SHARDS, "--storage", STORAGE, "--address", address,
               "--no-baseline"]  # fmt: skip
    journal = f"{STORAGE}/{NAME}/optuna.journal"

    def second_drivers(loop) -> None:
        from raysearch.storage import read_bytes

        before = read_bytes(journal)
        loop.refused["new"] = loop.try_command()
        loop.refused["resume"] = loop.try_command("--resume")
        assert read_bytes(journal).startswith(before)  # the bucket's study: only grown

    loop = KillLoop(command, root, kills=5, seed=5, cwd=first, final_cwd=second,
                    env={"RAYSEARCH_CACHE": str(root / "cache-first")},
                    final_env={"RAYSEARCH_CACHE": str(root / "cache-second")})  # fmt: skip
    resumed = loop.run(while_running=second_drivers)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return loop, second / "results", root


def test_a_driver_killed_five_times_in_a_bucket_loses_nothing(resumed_search, tmp_path):
    from ray.tune import ExperimentAnalysis

    from raysearch.search.space import load_space
    from raysearch.storage import read_bytes
    from tests.kill_loop import check_nothing_lost, study_of, trial_errors

    loop, results, root = resumed_search
    assert len(loop.killed_at) == 5
    new, resume = loop.refused["new"], loop.refused["resume"]
    assert new.returncode == 2 and "an experiment of this name exists" in new.stderr
    assert resume.returncode == 2 and "another driver runs this experiment (host " in resume.stderr
    assert new.stderr.count("\n") == resume.stderr.count("\n") == 1  # one line each
    board = _board(results)
    assert "error" not in set(board["status"]), trial_errors(f"{STORAGE}/{NAME}")
    assert board["checkpoint"].str.startswith(f"{STORAGE}/{NAME}/").all()
    trials = {t.trial_id for t in ExperimentAnalysis(f"{STORAGE}/{NAME}").trials}
    copy = tmp_path / "optuna.journal"  # the study as the bucket holds it
    copy.write_bytes(read_bytes(f"{STORAGE}/{NAME}/optuna.journal"))
    space = load_space(root / f"{NAME}.yaml")
    check_nothing_lost(board, trials, study_of(copy, NAME), space, SEARCH_SHARDS)


def test_the_optuna_study_is_read_from_the_bucket_after_the_drivers_cache_is_gone(
    resumed_search, tmp_path
):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from raysearch.storage import read_bytes

    _, _, root = resumed_search
    shutil.rmtree(root / "cache-second")
    copy = tmp_path / "optuna.journal"
    copy.write_bytes(read_bytes(f"{STORAGE}/{NAME}/optuna.journal"))
    study = optuna.load_study(
        study_name=NAME, storage=JournalStorage(JournalFileBackend(str(copy)))
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4


def test_leaderboard_and_predict_from_the_bucket(resumed_search, tmp_path, capsys):
    from raysearch.commands import leaderboard, predict
    from tests.conftest import write_clip

    _, results, _ = resumed_search
    assert leaderboard.main([f"{STORAGE}/{NAME}", "--results", str(tmp_path / "rebuilt")]) == 0
    again, first = _board(tmp_path / "rebuilt"), _board(results)
    pd.testing.assert_frame_equal(again.drop(columns="wall_s"), first.drop(columns="wall_s"))
    best = first.iloc[0]["checkpoint"]
    assert best.startswith("s3://") and best in (results / "leaderboard.md").read_text()
    clip = write_clip(tmp_path / "song.wav", 7.0)
    capsys.readouterr()
    assert predict.main([best, str(clip)]) == 0
    assert capsys.readouterr().out.startswith(f"{clip}: ")
