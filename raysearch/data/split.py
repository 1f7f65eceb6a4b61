"""Train / validation / test splits of *tracks*, never of segments.

All 19 segments of a track go to the same split. Splitting by segment would put audio that
overlaps by 1.5 s into both training and test sets and inflate test accuracy (see
``docs/accuracy.md``).

Three kinds of split:

* ``random`` (default): stratified by genre, 60 / 10 / 30 % of each genre's tracks (report
  §2.1), shuffled by a seed. Per genre, ``round(0.6 n)`` tracks go to train, ``round(0.1 n)`` to
  validation and the rest to test; the same seed and the same track list give the same split.
* ``filtered``: the artist-filtered split of Kereliuk, Sturm & Larsen (443 / 197 / 290 file ids,
  shipped in ``raysearch/data/splits/``). Tracks in none of the lists are left out and counted.
* ``lists``: any split given as three text files of track ids (train, validation, test).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from raysearch.data import GENRES
from raysearch.storage import read_text

SPLITS = ("train", "val", "test")
_ID = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})(\.(au|wav))?$")


class SplitError(ValueError):
    """A split specification or list file is unusable; the message names it."""


@dataclass(frozen=True)
class SplitSpec:
    """How tracks are assigned to train / val / test."""

    kind: str = "random"  # random | filtered | lists
    seed: int = 0  # random split only
    fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)  # report §2.1
    lists: tuple[str, str, str] | None = None  # train, val, test id files, for kind="lists"

    def __post_init__(self) -> None:
        if self.kind not in ("random", "filtered", "lists"):
            raise SplitError(f"split kind must be random, filtered or lists, got {self.kind!r}")
        if self.kind == "lists" and (self.lists is None or len(self.lists) != 3):
            raise SplitError("split kind 'lists' needs three files: train, val, test")
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions):
            raise SplitError(
                f"split fractions must be three non-negative numbers, got {self.fractions}"
            )
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise SplitError(f"split fractions must add up to 1, got {self.fractions}")

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        if self.kind == "random":
            out.update(seed=self.seed, fractions=list(self.fractions))
        if self.kind == "lists":
            out["lists"] = list(self.lists or ())
        return out


@dataclass
class SplitAssignment:
    """Which split each track is in, and which tracks were left out."""

    split_of: dict[str, str]  # track id → "train" | "val" | "test"
    left_out: list[str] = field(default_factory=list)  # tracks in no list (filtered / lists)

    def tracks(self, split: str) -> list[str]:
        return sorted(t for t, s in self.split_of.items() if s == split)


def assign_splits(track_ids: Iterable[str], spec: SplitSpec) -> SplitAssignment:
    """Assign every track id (``genre.NNNNN``) to a split according to ``spec``."""
    ids = sorted(set(track_ids))
    if spec.kind == "random":
        return SplitAssignment(_stratified(ids, spec.seed, spec.fractions))
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


def _stratified(ids: list[str], seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    by_genre: dict[str, list[str]] = {}
    for track in ids:
        by_genre.setdefault(track.split(".")[0], []).append(track)
    split_of = {}
    for genre, tracks in sorted(by_genre.items()):
        # One generator per genre, so adding or losing a genre does not reshuffle the others.
        genre_key = GENRES.index(genre) if genre in GENRES else sum(map(ord, genre))
        order = np.random.default_rng([seed, genre_key]).permutation(len(tracks))
        n_train = round(fractions[0] * len(tracks))
        n_val = min(round(fractions[1] * len(tracks)), len(tracks) - n_train)
        for rank, i in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            split_of[tracks[i]] = split
    return split_of


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
