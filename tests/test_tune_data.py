"""``raysearch tune --data ROOT``: real-GTZAN-shaped audio (``genres/<genre>/*.au``) prepared
into shards beside the storage and searched, in one command; a second search of the same audio
with the same settings prepares nothing."""

from __future__ import annotations

import json

import pytest

from raysearch.data import GENRES
from tests.conftest import write_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gtzan_tree(tmp_path_factory):
    """GTZAN's original layout and format: 10 genres x 10 Sun .au clips of 6 s (3 segments)."""
    root = tmp_path_factory.mktemp("gtzan")
    for label, genre in enumerate(GENRES):
        for index in range(10):
            path = root / "genres" / genre / f"{genre}.{index:05d}.au"
            write_clip(path, 6.0, freq=110.0 * (label + 1), seed=index)
    return root


def _parquet_files(shards) -> dict[str, int]:
    return {str(p.relative_to(shards)): p.stat().st_mtime_ns for p in shards.rglob("*.parquet")}


def test_tune_data_prepares_once_and_searches(ray_session, gtzan_tree, tmp_path, capsys):
    from raysearch.commands import tune

    storage, results = tmp_path / "storage", tmp_path / "results"
    argv = ["--space", "smoke", "--data", str(gtzan_tree), "--trials", "1",
            "--storage", str(storage), "--results", str(results)]  # fmt: skip
    assert tune.main(argv) == 0
    (shards,) = (storage / "_shards").iterdir()  # beside the storage, where every node reads
    assert f"shards of {gtzan_tree}: {shards} (prepared)" in capsys.readouterr().out
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["input"]["layout"] == "genres" and manifest["input"]["synthetic"] is None
    assert manifest["counts"]["tracks"] == {"train": 60, "val": 10, "test": 30}
    assert manifest["counts"]["skipped"] == 0
    board = (results / "leaderboard.md").read_text()
    assert f"Data: audio at {gtzan_tree}, split by track." in board
    assert "synthetic" not in board.split("## Top")[0]  # not called synthetic
    written = _parquet_files(shards)

    again = argv[:-4] + ["--name", "again", "--storage", str(storage), "--results", str(results)]
    assert tune.main(again) == 0
    assert f"shards of {gtzan_tree}: {shards} (up to date, nothing done)" in capsys.readouterr().out
    assert _parquet_files(shards) == written  # not one file written again
    assert json.loads((shards / "manifest.json").read_text())["created"] == manifest["created"]

    mel = argv + ["--name", "mel", "--features", "mel", "--n-mels", "32"]
    assert tune.main(mel) == 0  # other settings: other shards, the first ones untouched
    assert len(list((storage / "_shards").iterdir())) == 2
    assert _parquet_files(shards) == written

    # the audio changes under the same path: a resumed search keeps the shards it started on,
    # a new search prepares them again
    write_clip(gtzan_tree / "genres" / "blues" / "blues.00010.au", 6.0, freq=110.0, seed=10)
    resumed = ["--resume", "--name", "again", "--data", str(gtzan_tree),
               "--storage", str(storage), "--results", str(tmp_path / "resumed")]  # fmt: skip
    assert tune.main(resumed) == 0
    assert "(the audio changed since; the resumed search keeps these shards)" in (
        capsys.readouterr().out
    )
    assert _parquet_files(shards) == written
    fresh = argv[:-4] + ["--name", "fresh", "--storage", str(storage),
                         "--results", str(tmp_path / "fresh")]  # fmt: skip
    assert tune.main(fresh) == 0
    assert f"shards of {gtzan_tree}: {shards} (prepared)" in capsys.readouterr().out
    tracks = json.loads((shards / "manifest.json").read_text())["counts"]["tracks"]
    assert sum(tracks.values()) == 101
