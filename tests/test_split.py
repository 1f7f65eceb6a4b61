"""Track-level splits: stratified, seeded, disjoint; the filtered split; list files."""

from __future__ import annotations

from collections import Counter

import pytest

from raysearch.data import GENRES
from raysearch.data.split import SplitError, SplitSpec, assign_splits, parse_id_list

TRACKS = [f"{g}.{i:05d}" for g in GENRES for i in range(100)]


def test_random_split_is_stratified_60_10_30():
    assignment = assign_splits(TRACKS, SplitSpec(seed=0))
    per_genre = Counter((t.split(".")[0], s) for t, s in assignment.split_of.items())
    for genre in GENRES:
        assert (per_genre[genre, "train"], per_genre[genre, "val"], per_genre[genre, "test"]) == (
            60,
            10,
            30,
        )


def test_no_track_in_two_splits_and_none_lost():
    assignment = assign_splits(TRACKS, SplitSpec(seed=3))
    groups = [set(assignment.tracks(s)) for s in ("train", "val", "test")]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert set().union(*groups) == set(TRACKS)


def test_same_seed_same_split_other_seed_other_split():
    a = assign_splits(TRACKS, SplitSpec(seed=7)).split_of
    b = assign_splits(list(reversed(TRACKS)), SplitSpec(seed=7)).split_of
    c = assign_splits(TRACKS, SplitSpec(seed=8)).split_of
    assert a == b
    assert a != c


def test_filtered_split_counts_and_left_out():
    assignment = assign_splits(TRACKS, SplitSpec(kind="filtered"))
    counts = Counter(assignment.split_of.values())
    assert (counts["train"], counts["val"], counts["test"]) == (443, 197, 290)
    assert len(assignment.left_out) == 70
    assert "jazz.00054" in assignment.split_of or "jazz.00054" in assignment.left_out


def test_split_from_three_list_files(tmp_path):
    files = []
    for name, ids in (
        ("train", ["blues.00000", "rock.00001"]),
        ("val", ["pop.00002.wav"]),
        ("test", ["# comment", "", "jazz.00003"]),
    ):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(ids) + "\n")
        files.append(str(path))
    assignment = assign_splits(
        ["blues.00000", "rock.00001", "pop.00002", "jazz.00003", "metal.00004"],
        SplitSpec(kind="lists", lists=tuple(files)),
    )
    assert assignment.split_of == {
        "blues.00000": "train",
        "rock.00001": "train",
        "pop.00002": "val",
        "jazz.00003": "test",
    }
    assert assignment.left_out == ["metal.00004"]


def test_overlapping_lists_are_refused(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text("blues.00000\n")
    with pytest.raises(SplitError, match="share 1 track"):
        assign_splits(
            ["blues.00000"],
            SplitSpec(kind="lists", lists=tuple(str(tmp_path / f"{n}.txt") for n in "abc")),
        )


def test_bad_list_line_names_file_and_line():
    with pytest.raises(SplitError, match=r"train.txt:2: 'salsa.00001'"):
        parse_id_list("blues.00000\nsalsa.00001\n", "train.txt")


def test_fractions_must_add_up():
    with pytest.raises(SplitError, match="add up to 1"):
        SplitSpec(fractions=(0.5, 0.1, 0.1))
