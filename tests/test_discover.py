"""Finding clips in GTZAN's layouts."""

from __future__ import annotations

import pytest

from raysearch.data.discover import DataError, discover
from tests.conftest import GTZAN_SAMPLE, write_clip


def test_genres_original_wav_layout(tmp_path):
    write_clip(tmp_path / "genres_original" / "blues" / "blues.00001.wav", 3.0)
    write_clip(tmp_path / "genres_original" / "rock" / "rock.00000.wav", 3.0)
    (tmp_path / "genres_original" / "rock" / "notes.txt").write_text("hi")
    found = discover(str(tmp_path))
    assert found.layout == "genres_original"
    assert [(c.track_id, c.label) for c in found.clips] == [("blues.00001", 0), ("rock.00000", 9)]
    assert [i["reason"] for i in found.ignored] == ["name is not <genre>.NNNNN.au|wav"]


def test_genre_folders_directly_under_root(tmp_path):
    write_clip(tmp_path / "jazz" / "jazz.00054.wav", 3.0)
    write_clip(tmp_path / "jazz" / "blues.00002.wav", 3.0)
    found = discover(str(tmp_path))
    assert [c.track_id for c in found.clips] == ["jazz.00054"]
    assert "folder 'jazz'" in found.ignored[0]["reason"]


@pytest.mark.skipif(not GTZAN_SAMPLE.exists(), reason="../shared/gtzan-sample is not present")
def test_real_gtzan_sample_au_layout():
    found = discover(str(GTZAN_SAMPLE))
    assert found.layout == "genres"
    assert len(found.clips) == 10
    assert all(c.path.endswith(".au") for c in found.clips)


def test_missing_root_fails_at_once(tmp_path):
    with pytest.raises(DataError, match=r"no such directory"):
        discover(str(tmp_path / "nope"))


def test_root_without_clips_fails_with_one_message(tmp_path):
    (tmp_path / "genres" / "blues").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no GTZAN clips found"):
        discover(str(tmp_path))
