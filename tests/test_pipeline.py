"""The Ray Data pipeline end to end: shards, manifest, bad input, re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from raysearch.data.discover import DataError
from raysearch.data.pipeline import default_clips_per_task, prepare, read_manifest, split_path
from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.data.split import SplitSpec
from tests.conftest import GTZAN_SAMPLE, write_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def messy_root(tmp_path_factory):
    """A GTZAN-layout folder with good clips and every kind of bad input."""
    root = tmp_path_factory.mktemp("messy")
    genres = root / "genres_original"
    for i, genre in enumerate(("blues", "classical", "country", "disco")):
        for k in range(3):
            write_clip(genres / genre / f"{genre}.{k:05d}.wav", 6.0, freq=200 + 50 * i, seed=k)
    write_clip(genres / "rock" / "rock.00000.wav", 30.0)
    write_clip(genres / "rock" / "rock.00001.wav", 29.95)
    write_clip(genres / "pop" / "pop.00000.wav", 4.5, rate=44_100, channels=2)
    write_clip(genres / "pop" / "pop.00001.wav", 2.0)  # shorter than one segment
    (genres / "jazz").mkdir()
    # a corrupt file: a RIFF/WAVE header that lies, then garbage (like jazz.00054.wav)
    (genres / "jazz" / "jazz.00054.wav").write_bytes(
        b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(64))
    )
    (genres / "jazz" / "jazz.00001.wav").write_bytes(b"")  # empty
    (genres / "metal").mkdir()
    (genres / "metal" / "metal.00000.wav").write_text("<html>not audio</html>\n" * 40)
    (genres / "metal" / "Thumbs.db").write_bytes(b"\x00" * 10)
    return root


@pytest.fixture(scope="module")
def messy_shards(ray_session, messy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "messy"
    return prepare(str(messy_root), str(out), split=SplitSpec(seed=1))


def test_bad_files_are_skipped_with_reasons_and_the_job_completes(messy_shards):
    manifest = messy_shards.manifest
    reasons = {s["track_id"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"jazz.00054", "jazz.00001", "metal.00000", "pop.00001"}
    assert reasons["jazz.00001"] == "empty file"
    assert "decode" in reasons["jazz.00054"]
    assert "decode" in reasons["metal.00000"]
    assert reasons["pop.00001"].startswith("too short: 2.00 s")
    assert manifest["counts"]["skipped"] == 4
    assert [i["reason"] for i in manifest["ignored"]] == ["name is not <genre>.NNNNN.au|wav"]


def test_stereo_44k_clip_is_converted_and_reported(messy_shards):
    converted = {c["track_id"]: c for c in messy_shards.manifest["converted"]}
    assert converted["pop.00000"]["channels"] == 2
    assert converted["pop.00000"]["source_rate"] == 44_100
    df = pd.read_parquet(os.path.join(messy_shards.out, "segments"))
    assert (df.track_id == "pop.00000").sum() == 2  # 4.5 s → 2 segments


def test_segment_counts_schema_and_plain_readers(messy_shards):
    df = pd.read_parquet(os.path.join(messy_shards.out, "segments"))
    per_track = df.groupby("track_id").segment.count().to_dict()
    assert per_track["rock.00000"] == 19
    assert per_track["rock.00001"] == 19  # 29.95 s, padded
    assert per_track["blues.00000"] == 3
    assert set(df.columns) == {"track_id", "genre", "label", "segment", "split", "spectrogram"}
    assert messy_shards.manifest["padded"] == ["rock.00001"]
    table = pq.read_table(split_path(messy_shards.out, "train"))
    assert table.num_rows == messy_shards.manifest["counts"]["segments"]["train"]


def test_plain_pandas_without_ray_reads_a_flat_float16_list(messy_shards):
    code = (
        "import sys, pandas as pd, numpy as np\n"
        f"df = pd.read_parquet({os.path.join(messy_shards.out, 'segments')!r})\n"
        "x = np.stack(df.spectrogram.to_list()).reshape(-1, 513, 129)\n"
        "assert 'ray' not in sys.modules and x.dtype == np.float16\n"
        "print(x.shape[0], sorted(set(df.split)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total = sum(messy_shards.manifest["counts"]["segments"].values())
    assert done.stdout.split()[0] == str(total)


def test_no_track_in_two_splits(messy_shards):
    df = pd.read_parquet(os.path.join(messy_shards.out, "segments"))
    assert df.groupby("track_id").split.nunique().max() == 1
    recorded = messy_shards.manifest["split"]["tracks"]
    for split, tracks in recorded.items():
        assert set(df[df.split == split].track_id) == set(tracks)


def test_ray_reads_the_tensor_column_back(messy_shards, ray_session):
    import ray.data

    batch = ray.data.read_parquet(split_path(messy_shards.out, "train")).take_batch(4)
    assert batch["spectrogram"].shape == (4, 513, 129)


def test_manifest_train_stats_are_those_of_the_train_shards(messy_shards):
    import numpy as np

    df = pd.read_parquet(split_path(messy_shards.out, "train"))
    values = np.stack(df.spectrogram.to_list()).astype(np.float64)
    stats = messy_shards.manifest["train_stats"]
    assert stats["mean"] == pytest.approx(values.mean(), abs=1e-2)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-3)


def test_run_leaves_only_shards_and_manifest_and_restores_ray_data_settings(
    messy_shards, ray_session
):
    import ray.data

    assert sorted(os.listdir(messy_shards.out)) == ["manifest.json", "segments"]
    assert not [p for p in os.listdir(os.path.dirname(messy_shards.out)) if ".partial-" in p]
    # prepare() switches off Ray Data's per-operator reservations for its own job only
    assert ray.data.DataContext.get_current().op_resource_reservation_enabled is True


def test_same_settings_do_no_work_other_settings_never_overwrite(
    messy_shards, messy_root, ray_session
):
    before = os.path.getmtime(os.path.join(messy_shards.out, "manifest.json"))
    again = prepare(str(messy_root), messy_shards.out, split=SplitSpec(seed=1))
    assert again.reused
    assert os.path.getmtime(os.path.join(messy_shards.out, "manifest.json")) == before
    with pytest.raises(DataError, match="other spectrogram / split settings"):
        prepare(str(messy_root), messy_shards.out, split=SplitSpec(seed=2))
    with pytest.raises(DataError, match="other spectrogram / split settings"):
        prepare(
            str(messy_root),
            messy_shards.out,
            SpectrogramConfig(dtype="float32"),
            split=SplitSpec(seed=1),
        )
    assert read_manifest(messy_shards.out)["split"]["seed"] == 1


def test_missing_root_fails_before_any_work(tmp_path, ray_session):
    with pytest.raises(DataError, match="no such directory"):
        prepare(str(tmp_path / "absent"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not GTZAN_SAMPLE.exists(), reason="../shared/gtzan-sample is not present")
def test_real_gtzan_au_sample(ray_session, tmp_path):
    result = prepare(str(GTZAN_SAMPLE), str(tmp_path / "sample"))
    df = pd.read_parquet(tmp_path / "sample" / "segments")
    assert df.track_id.nunique() == 10
    assert df.groupby("track_id").segment.count().tolist() == [19] * 10
    assert result.manifest["counts"]["skipped"] == 0
    manifest = json.loads((tmp_path / "sample" / "manifest.json").read_text())
    assert manifest["input"]["layout"] == "genres"


@pytest.mark.parametrize(
    ("clips", "cpus", "expected"),
    [(200, 2, 25), (1000, 2, 25), (1000, 64, 4), (21, 2, 3), (3, 8, 1), (0, 2, 1)],
)
def test_clips_per_task_leaves_no_cpu_idle(clips, cpus, expected):
    assert default_clips_per_task(clips, cpus) == expected


def test_prepare_cli_rejects_a_bad_clips_per_task(capsys):
    from raysearch.prepare import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--clips-per-task", "0"])
    assert "--clips-per-task: must be >= 1, got 0" in capsys.readouterr().err
