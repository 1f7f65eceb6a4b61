"""Track-level splits: stratified, seeded, disjoint; the filtered split; list files; the
segment-level split; the settings key of list files."""

from __future__ import annotations

from collections import Counter

import pytest

from raysearch.data import GENRES
from raysearch.data.split import (
    SPLITS,
    SplitError,
    SplitSpec,
    assign_splits,
    parse_id_list,
    split_key,
)

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


def _segment_counts(segment_splits, n_segments):
    """(genre, split) → segments, keeping the first n_segments slots of every track."""
    return Counter(
        (t.split(".")[0], s) for t, slots in segment_splits.items() for s in slots[:n_segments]
    )


@pytest.mark.parametrize(("tracks_per_genre", "n_segments"), [(100, 19), (10, 3), (7, 19)])
def test_segment_split_is_stratified_60_10_30_over_the_segments_that_exist(
    tracks_per_genre, n_segments
):
    tracks = [f"{g}.{i:05d}" for g in GENRES for i in range(tracks_per_genre)]
    assignment = assign_splits(tracks, SplitSpec(kind="segment", seed=0), max_segments=19)
    assert assignment.split_of == {} and set(assignment.segment_splits) == set(tracks)
    assert all(len(slots) == 19 for slots in assignment.segment_splits.values())
    counts = _segment_counts(assignment.segment_splits, n_segments)
    total = tracks_per_genre * n_segments
    for genre in GENRES:
        assert sum(counts[genre, s] for s in SPLITS) == total  # every segment has one split
        for split, fraction in zip(SPLITS, (0.6, 0.1, 0.3), strict=True):
            assert abs(counts[genre, split] - fraction * total) < 1


def test_segment_split_puts_one_track_in_train_and_test():
    tracks = [f"{g}.{i:05d}" for g in GENRES for i in range(10)]
    assignment = assign_splits(tracks, SplitSpec(kind="segment", seed=0), max_segments=3)
    shared = set(assignment.tracks("train")) & set(assignment.tracks("test"))
    assert len(shared) > 10
    # no track keeps all its segments together: the split ignores tracks
    spread = [
        len(set(slots))
        for slots in assign_splits(
            tracks, SplitSpec(kind="segment"), max_segments=19
        ).segment_splits.values()
    ]
    assert min(spread) >= 2


def test_segment_split_is_seeded_and_independent_of_max_segments():
    tracks = [f"{g}.{i:05d}" for g in GENRES for i in range(10)]
    a = assign_splits(tracks, SplitSpec(kind="segment", seed=4), 19).segment_splits
    b = assign_splits(list(reversed(tracks)), SplitSpec(kind="segment", seed=4), 19).segment_splits
    c = assign_splits(tracks, SplitSpec(kind="segment", seed=5), 19).segment_splits
    short = assign_splits(tracks, SplitSpec(kind="segment", seed=4), 3).segment_splits
    assert a == b and a != c
    assert short == {t: slots[:3] for t, slots in a.items()}


def test_segment_split_level_and_settings():
    spec = SplitSpec(kind="segment", seed=3)
    assert spec.level == "segment"
    assert SplitSpec().level == SplitSpec(kind="filtered").level == "track"
    assert spec.to_dict() == {"kind": "segment", "seed": 3, "fractions": [0.6, 0.1, 0.3]}
    assert split_key(spec) == spec.to_dict()
    with pytest.raises(SplitError, match="max_segments >= 1"):
        assign_splits(["blues.00000"], spec, max_segments=0)


def _write_lists(folder, train, val, test):
    paths = []
    for name, ids in (("train", train), ("val", val), ("test", test)):
        path = folder / f"{name}.txt"
        path.write_text("\n".join(ids) + "\n")
        paths.append(str(path))
    return SplitSpec(kind="lists", lists=tuple(paths))


def test_split_key_of_lists_follows_their_contents_not_only_their_paths(tmp_path):
    spec = _write_lists(tmp_path, ["blues.00000", "rock.00001"], ["pop.00002"], ["jazz.00003"])
    before = split_key(spec)
    assert before["lists"] == list(spec.lists) and len(before["lists_sha256"]) == 64
    # comments, order, blank lines and file suffixes do not change which tracks go where
    _write_lists(
        tmp_path, ["# two", "rock.00001", "", "blues.00000.wav"], ["pop.00002"], ["jazz.00003"]
    )
    assert split_key(spec) == before
    # one id moved from test to train, same paths: a new key
    _write_lists(tmp_path, ["blues.00000", "rock.00001", "jazz.00003"], ["pop.00002"], [])
    assert split_key(spec)["lists_sha256"] != before["lists_sha256"]


def test_split_key_of_a_missing_list_names_it(tmp_path):
    spec = SplitSpec(kind="lists", lists=(str(tmp_path / "absent.txt"), "b", "c"))
    with pytest.raises(SplitError, match="absent.txt: cannot read split list"):
        split_key(spec)
