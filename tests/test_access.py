"""Bucket locations checked before any work: against moto's S3 server (a real HTTP endpoint),
each bad input is one line naming the option and the URI, and no Ray starts."""

from __future__ import annotations

import pytest

from raysearch.access import WRITE_CHECK, AccessError, check_location
from tests.s3_server import BUCKET, s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().put_object(Bucket=BUCKET, Key="empty/readme.txt", Body=b"no shards here")
        yield server


@pytest.fixture
def aws(s3, monkeypatch):
    """The server's environment in this process (pyarrow and botocore read it per call)."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def no_credentials(aws, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return aws


def test_an_existing_bucket_passes_and_the_write_check_leaves_nothing(aws):
    check_location(f"s3://{BUCKET}/storage", "--storage", write=True)
    check_location(f"s3://{BUCKET}/empty", "--shards")
    assert not [key for key in aws.keys() if WRITE_CHECK in key]


def test_local_paths_are_not_checked(tmp_path):
    check_location(str(tmp_path / "not-yet"), "--storage", write=True)


def test_a_bucket_that_does_not_exist(aws):
    with pytest.raises(AccessError) as error:
        check_location("s3://no-such-bucket/storage", "--storage", write=True)
    assert (
        str(error.value)
        == "--storage s3://no-such-bucket/storage: bucket 'no-such-bucket' does not exist"
    )


def test_no_credentials(no_credentials):
    with pytest.raises(
        AccessError, match=r"^--data s3://raysearch-test/gtzan: no AWS credentials found"
    ):
        check_location(f"s3://{BUCKET}/gtzan", "--data")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _tune(argv: list[str]) -> int:
    import ray

    from raysearch.commands import tune

    code = tune.main(["--space", "smoke", *argv])
    assert not ray.is_initialized(), "the command started Ray before refusing its input"
    return code


def test_tune_refuses_a_shard_bucket_that_does_not_exist(aws, tmp_path, capsys):
    argv = ["--shards", "s3://no-such-bucket/shards", "--storage", f"s3://{BUCKET}/storage"]
    assert _tune(argv + ["--results", str(tmp_path)]) == 2
    assert _one_line(capsys) == (
        "error: --shards s3://no-such-bucket/shards: bucket 'no-such-bucket' does not exist"
    )


def test_tune_refuses_storage_without_credentials(no_credentials, tmp_path, capsys):
    argv = ["--storage", f"s3://{BUCKET}/storage", "--results", str(tmp_path)]
    assert _tune(argv) == 2
    assert _one_line(capsys).startswith(
        f"error: --storage s3://{BUCKET}/storage: no AWS credentials found"
    )


def test_tune_refuses_a_shard_uri_without_a_manifest(aws, tmp_path, capsys):
    argv = ["--shards", f"s3://{BUCKET}/empty", "--storage", f"s3://{BUCKET}/storage"]
    assert _tune(argv + ["--results", str(tmp_path)]) == 2
    assert _one_line(capsys) == (
        f"error: s3://{BUCKET}/empty: no manifest.json (not a raysearch shard folder; "
        "run python -m raysearch.prepare first)"
    )


def test_tune_takes_data_or_shards_not_both(tmp_path, capsys):
    argv = ["--data", str(tmp_path), "--shards", str(tmp_path), "--results", str(tmp_path)]
    assert _tune(argv) == 2
    assert _one_line(capsys) == (
        "error: --data and --shards: give one (--data prepares shards from audio)"
    )


def test_tune_shard_settings_need_data(tmp_path, capsys):
    assert _tune(["--features", "mel", "--split", "segment", "--results", str(tmp_path)]) == 2
    assert _one_line(capsys) == (
        "error: --features, --split: describe the shards of --data; give --data ROOT too"
    )


def test_prepare_leaderboard_and_predict_refuse_a_missing_bucket(aws, tmp_path, capsys):
    from raysearch.commands import leaderboard, predict, prepare

    assert prepare.main(["--data", "s3://no-such-bucket/gtzan", "--out", str(tmp_path)]) == 2
    assert _one_line(capsys) == (
        "error: --data s3://no-such-bucket/gtzan: bucket 'no-such-bucket' does not exist"
    )
    assert prepare.main(["--data", str(tmp_path), "--out", "s3://no-such-bucket/shards"]) == 2
    assert "--out s3://no-such-bucket/shards: bucket 'no-such-bucket'" in _one_line(capsys)
    assert leaderboard.main(["s3://no-such-bucket/storage/smoke"]) == 2
    assert "EXPERIMENT s3://no-such-bucket/storage/smoke: bucket" in _one_line(capsys)
    assert predict.main(["s3://no-such-bucket/checkpoint", str(tmp_path)]) == 2
    assert "CHECKPOINT s3://no-such-bucket/checkpoint: bucket" in _one_line(capsys)
