"""Train / validation / test splits of *tracks*: all segments of a track go to one split.

All 19 segments of a track go to the same split. Splitting by segment would put audio that
overlaps by 1.5 s into both training and test sets and inflate test accuracy (see
``docs/accuracy.md``); the ``segment`` kind below does exactly that, on purpose, to measure it.

Four kinds of split:

* ``random`` (default): stratified by genre, 60 / 10 / 30 % of each genre's tracks (report
  §2.1), shuffled by a seed. Per genre, ``round(0.6 n)`` tracks go to train, ``round(0.1 n)`` to
  validation and the rest to test; the same seed and the same track list give the same split.
* ``filtered``: the artist-filtered split of Kereliuk, Sturm & Larsen (443 / 197 / 290 file ids,
  shipped in ``raysearch/data/splits/``). Tracks in none of the lists are left out and counted.
* ``lists``: any split given as three text files of track ids (train, validation, test). The
  settings key (:func:`split_key`) holds a hash of the ids the files contain, not only their
  paths, so a list edited in place gives new shards instead of stale ones.
* ``segment``: the split the student report most likely used: every *segment* is assigned at
  random, stratified by genre, 60 / 10 / 30, whatever its track, so overlapping segments of one
  track land in train and test (:data:`SEGMENT_SPLIT_WARNING`). Only for measuring that leak.

How the segment split is drawn (:func:`assign_segments`). The segments do not exist yet when
the split is made (a clip's count is known only once it is decoded), so the split is made over
*slots* (track, k) for k < ``max_segments``. Per genre the slots are put in segment-major
order: the genre's tracks in a fresh seeded random order for k = 0, then another for k = 1,
and so on. Along that order the splits follow a fixed largest-remainder sequence, in which
every prefix of length m holds ``fractions * m`` slots of each split to within one. When every
clip of a genre gives the same number of segments (GTZAN's 30 s clips: 19; the synthetic 6 s
clips: 3), the segments that exist are a prefix of that order, so the genre's segments are split
60 / 10 / 30 to within one segment per split; clips of other lengths leave gaps and make it
approximate. The split of slot (track, k) does not depend on ``max_segments``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from raysearch.data import GENRES
from raysearch.errors import UserError
from raysearch.storage import read_text

SPLITS = ("train", "val", "test")
KINDS = ("random", "filtered", "lists", "segment")
SEGMENT_SPLIT_WARNING = (
    "a segment split puts overlapping audio of one track (segments overlap by 1.5 s) into "
    "train and test; it inflates test accuracy and is only for measuring that leak"
)
_ID = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})(\.(au|wav))?$")


class SplitError(UserError):
    """A split specification or list file is unusable; the message names it."""


@dataclass(frozen=True)
class SplitSpec:
    """How tracks (or, for kind="segment", segments) are assigned to train / val / test."""

    kind: str = "random"  # random | filtered | lists | segment
    seed: int = 0  # random and segment splits only
    fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)  # report §2.1
    lists: tuple[str, str, str] | None = None  # train, val, test id files, for kind="lists"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SplitError(f"split kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "lists" and (self.lists is None or len(self.lists) != 3):
            raise SplitError("split kind 'lists' needs three files: train, val, test")
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions):
            raise SplitError(
                f"split fractions must be three non-negative numbers, got {self.fractions}"
            )
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise SplitError(f"split fractions must add up to 1, got {self.fractions}")

    @property
    def level(self) -> str:
        """``"segment"`` for the segment split, ``"track"`` for every other kind."""
        return "segment" if self.kind == "segment" else "track"

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        if self.kind in ("random", "segment"):
            out.update(seed=self.seed, fractions=list(self.fractions))
        if self.kind == "lists":
            out["lists"] = list(self.lists or ())
        return out


def split_key(spec: SplitSpec) -> dict:
    """What decides the assignment: :meth:`SplitSpec.to_dict`, plus for ``lists`` the sha256
    of the ids the three files hold (read through :mod:`raysearch.storage`, so ``s3://`` works).

    The hash is of the parsed ids (sorted, per list), so comments, blank lines, order and
    ``.wav`` suffixes do not count and an edited track id does.
    """
    key = spec.to_dict()
    if spec.kind == "lists":
        ids = [sorted(members) for members in _read_lists(spec.lists or ())]
        key["lists_sha256"] = hashlib.sha256(json.dumps(ids).encode()).hexdigest()
    return key


@dataclass
class SplitAssignment:
    """Which split each track (or, for a segment split, each segment slot) is in."""

    split_of: dict[str, str]  # track id → "train" | "val" | "test"; empty for a segment split
    left_out: list[str] = field(default_factory=list)  # tracks in no list (filtered / lists)
    # segment split only: track id → the split of its segments 0, 1, ..., max_segments - 1
    segment_splits: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def tracks(self, split: str) -> list[str]:
        """Tracks in ``split``; for a segment split, tracks with a segment slot in it."""
        if self.segment_splits:
            return sorted(t for t, slots in self.segment_splits.items() if split in slots)
        return sorted(t for t, s in self.split_of.items() if s == split)


def assign_splits(
    track_ids: Iterable[str], spec: SplitSpec, max_segments: int = 19
) -> SplitAssignment:
    """Assign every track id (``genre.NNNNN``) to a split according to ``spec``.

    ``max_segments`` (segment split only): the slots per track, the pipeline's
    ``SpectrogramConfig.max_segments``.
    """
    ids = sorted(set(track_ids))
    if spec.kind == "random":
        return SplitAssignment(_stratified(ids, spec.seed, spec.fractions))
    if spec.kind == "segment":
        return SplitAssignment({}, segment_splits=assign_segments(ids, spec, max_segments))
    lists = _packaged_lists() if spec.kind == "filtered" else _read_lists(spec.lists or ())
    split_of: dict[str, str] = {}
    left_out = []
    for track in ids:
        for name, members in zip(SPLITS, lists, strict=True):
            if track in members:
                split_of[track] = name
                break
        else:
            left_out.append(track)
    return SplitAssignment(split_of, left_out)


def _by_genre(ids: list[str]) -> dict[str, list[str]]:
    by_genre: dict[str, list[str]] = {}
    for track in ids:
        by_genre.setdefault(track.split(".")[0], []).append(track)
    return dict(sorted(by_genre.items()))


def _genre_key(genre: str) -> int:
    # One generator per genre, so adding or losing a genre does not reshuffle the others.
    return GENRES.index(genre) if genre in GENRES else sum(map(ord, genre))


def _stratified(ids: list[str], seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    split_of = {}
    for genre, tracks in _by_genre(ids).items():
        order = np.random.default_rng([seed, _genre_key(genre)]).permutation(len(tracks))
        n_train = round(fractions[0] * len(tracks))
        n_val = min(round(fractions[1] * len(tracks)), len(tracks) - n_train)
        for rank, i in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            split_of[tracks[i]] = split
    return split_of


def assign_segments(
    track_ids: Iterable[str], spec: SplitSpec, max_segments: int
) -> dict[str, tuple[str, ...]]:
    """The segment split: track id → the split of each of its ``max_segments`` segment slots.

    Per genre, slots in segment-major order (a seeded permutation of the genre's tracks for
    each k) take the splits of :func:`_quota_sequence`; see the module docstring.
    """
    if max_segments < 1:
        raise SplitError(f"a segment split needs max_segments >= 1, got {max_segments}")
    out: dict[str, list[str]] = {}
    for genre, tracks in _by_genre(sorted(set(track_ids))).items():
        quota = _quota_sequence(len(tracks) * max_segments, spec.fractions)
        slots = {t: [""] * max_segments for t in tracks}
        for k in range(max_segments):
            order = np.random.default_rng([spec.seed, _genre_key(genre), k]).permutation(
                len(tracks)
            )
            for rank, i in enumerate(order):
                slots[tracks[i]][k] = SPLITS[quota[k * len(tracks) + rank]]
        out.update(slots)
    return {t: tuple(s) for t, s in sorted(out.items())}


def _quota_sequence(length: int, fractions: tuple[float, float, float]) -> list[int]:
    """Split indices such that every prefix of length m holds ``fractions * m`` of each, ±1.

    Largest remainder: position i goes to the split furthest below its share of i + 1 (ties to
    the earlier split).
    """
    counts = [0, 0, 0]
    sequence = []
    for i in range(length):
        deficits = [f * (i + 1) - c for f, c in zip(fractions, counts, strict=True)]
        best = max(range(3), key=lambda s: (deficits[s], -s))
        counts[best] += 1
        sequence.append(best)
    return sequence


def parse_id_list(text: str, source: str) -> list[str]:
    """Track ids from a list file: one per line, ``#`` comments and blank lines ignored."""
    ids = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.rsplit("/", 1)[-1]
        match = _ID.match(name)
        if not match or match["genre"] not in GENRES:
            raise SplitError(
                f"{source}:{number}: {line!r} is not a GTZAN track id like 'blues.00042'"
            )
        ids.append(f"{match['genre']}.{match['index']}")
    return ids


def _read_lists(paths: Iterable[str]) -> list[set[str]]:
    lists = []
    for path in paths:
        try:
            text = read_text(path)
        except (OSError, FileNotFoundError) as exc:
            raise SplitError(f"{path}: cannot read split list ({exc})") from exc
        lists.append(set(parse_id_list(text, path)))
    _check_disjoint(lists, [str(p) for p in paths])
    return lists


def _packaged_lists() -> list[set[str]]:
    folder = resources.files("raysearch.data") / "splits"
    names = ["filtered_train.txt", "filtered_valid.txt", "filtered_test.txt"]
    lists = [set(parse_id_list((folder / n).read_text(), n)) for n in names]
    _check_disjoint(lists, names)
    return lists


def _check_disjoint(lists: list[set[str]], names: list[str]) -> None:
    for i in range(len(lists)):
        for j in range(i + 1, len(lists)):
            both = lists[i] & lists[j]
            if both:
                raise SplitError(
                    f"{names[i]} and {names[j]} share {len(both)} track(s), e.g. {sorted(both)[0]}"
                )
