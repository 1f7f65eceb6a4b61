"""The Ray Data pipeline end to end: shards, manifest, bad input, re-runs; log-mel shards, the
segment-level split, split lists edited in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import librosa
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from raysearch.commands.prepare import build_parser
from raysearch.commands.prepare import main as prepare_main
from raysearch.data.defaults import default_shards_dir
from raysearch.data.discover import DataError
from raysearch.data.pipeline import (
    default_clips_per_task,
    prepare,
    read_manifest,
    settings_hash,
    split_path,
)
from raysearch.data.spectrogram import SpectrogramConfig, load_audio, segment_clip
from raysearch.data.split import SPLITS, SplitSpec
from raysearch.training.data import spectrogram_settings
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
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--clips-per-task", "0"])
    assert "--clips-per-task: must be >= 1, got 0" in capsys.readouterr().err


def _frame(shards: str) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(shards, "segments"))


def _spectrograms(df: pd.DataFrame, shape) -> np.ndarray:
    return np.stack(df.spectrogram.to_list()).reshape(-1, *shape)


def test_stft_default_shards_are_the_report_formula_and_keep_their_settings_hash(
    messy_shards, messy_root
):
    manifest = messy_shards.manifest
    assert manifest["features"] == "stft" and manifest["split_level"] == "track"
    assert manifest["shape"] == [513, 129]
    # the hash of the default settings before features / n_mels existed: old shards still match
    assert settings_hash(SpectrogramConfig(), SplitSpec()) == (
        "eb6c1eff91d31e2d44cc23cd6b8a683e95065205e165472378ec0b23d5c41805"
    )
    df = _frame(messy_shards.out)
    written = _spectrograms(df[df.track_id == "rock.00000"].sort_values("segment"), (513, 129))
    y, _ = load_audio((messy_root / "genres_original/rock/rock.00000.wav").read_bytes(), 22_050)
    stft = librosa.stft(y, n_fft=1024, hop_length=512, window="hann", center=True)
    previous = (20.0 * np.log10(np.maximum(np.abs(stft), 1e-5))).astype(np.float32)
    for k in (0, 9, 18):
        start = (k * 33_075) // 512
        assert np.array_equal(written[k], previous[:, start : start + 129].astype(np.float16))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    """5 clips of 6 s (3 segments each) in each of 4 genres."""
    root = tmp_path_factory.mktemp("clean")
    for i, genre in enumerate(("blues", "classical", "country", "disco")):
        for k in range(5):
            path = root / "genres_original" / genre / f"{genre}.{k:05d}.wav"
            write_clip(path, 6.0, freq=200 + 300 * i, seed=k)
    return root


def test_prepare_cli_makes_log_mel_shards(clean_root, tmp_path, ray_session, capsys):
    out = tmp_path / "mel"
    argv = ["--data", str(clean_root), "--out", str(out), "--features", "mel", "--n-mels", "128"]
    assert prepare_main(argv) == 0
    manifest = read_manifest(str(out))
    assert manifest["features"] == "mel" and manifest["shape"] == [128, 129]
    assert manifest["spectrogram"]["features"] == "mel"
    assert manifest["spectrogram"]["n_mels"] == 128
    assert manifest["spectrogram"]["db"].startswith("10*log10(max(M @ |X|**2, amin**2))")
    assert "[128, 129] float16 (mel)" in capsys.readouterr().out
    df = _frame(str(out))
    x = _spectrograms(df, (128, 129))
    assert len(x) == 20 * 3 and x.dtype == np.float16
    # the pipeline's numbers are segment_clip's with the mel settings (what predict uses)
    rows = df[df.track_id == "country.00002"].sort_values("segment")
    y, _ = load_audio(
        (clean_root / "genres_original/country/country.00002.wav").read_bytes(), 22_050
    )
    expected = segment_clip(y, SpectrogramConfig(features="mel", n_mels=128))
    assert np.array_equal(_spectrograms(rows, (128, 129)), expected)
    # country is an 800 Hz tone: its loudest mel band is the one around 800 Hz
    centres = librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=11_025)[1:-1]
    assert abs(centres[int(np.argmax(expected[0].mean(axis=1)))] - 800.0) < 60.0
    # training carries these settings into the checkpoint, and predict rebuilds the same config
    settings = spectrogram_settings(str(out))
    assert SpectrogramConfig(**settings) == SpectrogramConfig(features="mel", n_mels=128)
    # mel and stft shards never share a settings hash, or a default folder
    stft_hash = settings_hash(SpectrogramConfig(), SplitSpec())
    assert manifest["settings_hash"] != stft_hash
    assert default_shards_dir(str(clean_root), SpectrogramConfig(), SplitSpec()) != (
        default_shards_dir(str(clean_root), SpectrogramConfig(features="mel"), SplitSpec())
    )
    assert (
        settings_hash(SpectrogramConfig(features="mel", n_mels=64), SplitSpec())
        != (manifest["settings_hash"])
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--features", "cqt"], "argument --features: invalid choice: 'cqt'"),
        (["--n-mels", "0"], "argument --n-mels: must be >= 1, got 0"),
        (["--n-mels", "many"], "argument --n-mels: not an integer: 'many'"),
    ],
)
def test_prepare_cli_rejects_bad_features_and_n_mels(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_prepare_cli_rejects_more_mel_bands_than_the_stft_can_fill(tmp_path, capsys):
    argv = ["--data", str(tmp_path), "--features", "mel", "--n-mels", "400"]
    assert prepare_main(argv) == 2  # refused before any data is read or Ray is started
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: n_mels=400 leaves")


def test_segment_split_spreads_a_track_over_train_and_test(
    clean_root, tmp_path, ray_session, capsys
):
    out = tmp_path / "segment"
    argv = ["--data", str(clean_root), "--out", str(out), "--split", "segment", "--split-seed", "3"]
    assert prepare_main(argv) == 0
    captured = capsys.readouterr()
    assert "warning: a segment split puts overlapping audio of one track" in captured.err
    assert "inflates test accuracy" in captured.err
    manifest = read_manifest(str(out))
    assert manifest["split_level"] == "segment"
    assert manifest["split"]["kind"] == "segment" and manifest["split"]["seed"] == 3
    df = _frame(str(out))
    # the same track in train and test
    splits_of = df.groupby("track_id").split.agg(set)
    assert any({"train", "test"} <= s for s in splits_of)
    # counts add up: every segment written once, in one split, as the manifest says
    assert len(df) == 20 * 3 == sum(manifest["counts"]["segments"].values())
    assert df.groupby(["track_id", "segment"]).size().max() == 1
    for split in SPLITS:
        assert (df.split == split).sum() == manifest["counts"]["segments"][split]
        assert set(df[df.split == split].track_id) == set(manifest["split"]["tracks"][split])
    # stratified by genre: 15 segments per genre → 9 / 1.5 / 4.5, each within one
    per_genre = df.groupby(["genre", "split"]).size()
    for genre in ("blues", "classical", "country", "disco"):
        for split, share in zip(SPLITS, (9.0, 1.5, 4.5), strict=True):
            assert abs(per_genre.get((genre, split), 0) - share) < 1
    # train stats over the train segments only
    train = _spectrograms(df[df.split == "train"], (513, 129)).astype(np.float64)
    assert manifest["train_stats"]["mean"] == pytest.approx(train.mean(), abs=1e-2)
    # a segment split never reuses track-split shards
    with pytest.raises(DataError, match="other spectrogram / split settings"):
        prepare(str(clean_root), str(out), split=SplitSpec(kind="random", seed=3))


def test_default_split_never_shares_a_track(clean_root, tmp_path, ray_session):
    result = prepare(str(clean_root), str(tmp_path / "track"))
    assert result.manifest["split_level"] == "track"
    df = _frame(result.out)
    assert df.groupby("track_id").split.nunique().max() == 1


def _write_lists(folder, train, val, test) -> tuple[str, str, str]:
    paths = []
    for name, ids in (("train", train), ("val", val), ("test", test)):
        (folder / f"{name}.txt").write_text("\n".join(ids) + "\n")
        paths.append(str(folder / f"{name}.txt"))
    return tuple(paths)


def test_a_split_list_edited_in_place_gives_new_shards(clean_root, tmp_path, ray_session):
    lists = tmp_path / "lists"
    lists.mkdir()
    train = [f"blues.{k:05d}" for k in range(3)] + [f"disco.{k:05d}" for k in range(3)]
    paths = _write_lists(lists, train, ["blues.00003"], ["blues.00004", "disco.00004"])
    spec = SplitSpec(kind="lists", lists=paths)
    out = str(tmp_path / "listed")
    first = prepare(str(clean_root), out, split=spec)
    assert first.manifest["split"]["tracks"]["test"] == ["blues.00004", "disco.00004"]
    assert prepare(str(clean_root), out, split=spec).reused
    folder_before = default_shards_dir(str(clean_root), SpectrogramConfig(), spec)

    # same paths, one id moved from test to train
    _write_lists(lists, [*train, "disco.00004"], ["blues.00003"], ["blues.00004"])
    with pytest.raises(DataError, match="other spectrogram / split settings"):
        prepare(str(clean_root), out, split=spec)
    assert default_shards_dir(str(clean_root), SpectrogramConfig(), spec) != folder_before
    second = prepare(str(clean_root), out, split=spec, overwrite=True)
    assert not second.reused
    assert second.manifest["split"]["tracks"]["test"] == ["blues.00004"]
    assert "disco.00004" in second.manifest["split"]["tracks"]["train"]
    assert second.manifest["split"]["lists_sha256"] != first.manifest["split"]["lists_sha256"]
    assert set(_frame(out).query("split == 'test'").track_id) == {"blues.00004"}


def test_changed_audio_is_refused_replaced_or_kept_as_asked(clean_root, tmp_path, ray_session):
    import shutil

    root = tmp_path / "audio"
    shutil.copytree(clean_root, root)
    out = str(tmp_path / "shards")
    first = prepare(str(root), out)
    tracks = sum(first.manifest["counts"]["tracks"].values())
    write_clip(root / "genres_original" / "blues" / "blues.00005.wav", 6.0, freq=230, seed=5)

    with pytest.raises(DataError, match="another input.*--overwrite"):
        prepare(str(root), out)  # a folder the user named: refused, nothing touched
    assert read_manifest(out)["created"] == first.manifest["created"]

    kept = prepare(str(root), out, changed_input="keep")  # a resumed search keeps its data
    assert kept.reused and kept.input_changed
    assert read_manifest(out)["created"] == first.manifest["created"]

    replaced = prepare(str(root), out, changed_input="replace")  # a cache: made again
    assert not replaced.reused
    assert sum(replaced.manifest["counts"]["tracks"].values()) == tracks + 1
    assert prepare(str(root), out, changed_input="replace").reused  # then up to date
    with pytest.raises(DataError, match="other spectrogram / split settings"):
        prepare(str(root), out, split=SplitSpec(seed=3), changed_input="replace")  # not settings
