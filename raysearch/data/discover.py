"""Find GTZAN clips under a root, in any of the layouts GTZAN is distributed in.

Layouts recognised (the first that exists wins):

* ``ROOT/genres/<genre>/<genre>.NNNNN.au``            — the original 2002 archive
* ``ROOT/genres_original/<genre>/<genre>.NNNNN.wav``  — the common (Kaggle) copy, and the
  synthetic mini-GTZAN that ``raysearch.data.synth`` writes
* ``ROOT/Data/genres_original/...``                   — the Kaggle archive unpacked as is
* ``ROOT/<genre>/<genre>.NNNNN.{au,wav}``             — ROOT is the genre folder itself

ROOT may be a local path or a filesystem URI that pyarrow understands (``s3://``, ``gs://``,
``file://``), so the same code lists GTZAN on a laptop and in a bucket.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from raysearch.data import GENRES
from raysearch.errors import UserError
from raysearch.storage import join, resolve

LAYOUTS = ("genres", "genres_original", "Data/genres_original", "")
AUDIO_EXTENSIONS = (".au", ".wav")
_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})\.(?P<ext>au|wav)$", re.IGNORECASE)


class DataError(UserError):
    """Input data cannot be used: the message names the path and what is wrong."""


@dataclass(frozen=True)
class Clip:
    """One GTZAN audio file."""

    track_id: str  # "blues.00042": the genre and index, no extension
    genre: str
    label: int  # index into GENRES
    path: str  # as given to the filesystem (local path or path inside the bucket)
    size: int  # bytes
    mtime_ns: int  # for the input fingerprint; 0 where the filesystem has none


@dataclass
class Discovery:
    """What :func:`discover` found under a root."""

    root: str
    layout: str
    clips: list[Clip]
    ignored: list[dict] = field(default_factory=list)  # {"path", "reason"}
    synthetic: dict | None = None  # the generator's parameters, when the set is synthetic


def discover(root: str) -> Discovery:
    """List the clips under ``root``; raise :class:`DataError` if there is no usable clip."""
    fs, base = resolve(root)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"{root}: no such directory")
    if info.type != pafs.FileType.Directory:
        raise DataError(f"{root}: not a directory")

    for layout in LAYOUTS:
        genre_root = join(base, layout) if layout else base
        if fs.get_file_info(genre_root).type != pafs.FileType.Directory:
            continue
        names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(genre_root))}
        if not names.intersection(GENRES):
            continue
        clips, ignored = _scan_genres(fs, genre_root)
        if clips:
            return Discovery(
                root=root,
                layout=layout or ".",
                clips=clips,
                ignored=ignored,
                synthetic=_synthetic_marker(fs, base),
            )
    looked = ", ".join(
        f"{layout + '/' if layout else ''}<genre>/<genre>.NNNNN.au|wav" for layout in LAYOUTS
    )
    raise DataError(f"{root}: no GTZAN clips found (looked for {looked})")


def _scan_genres(fs: pafs.FileSystem, genre_root: str) -> tuple[list[Clip], list[dict]]:
    clips: dict[str, Clip] = {}
    ignored: list[dict] = []
    entries = fs.get_file_info(pafs.FileSelector(genre_root, recursive=True))
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.type != pafs.FileType.File:
            continue
        relative = entry.path[len(genre_root) :].lstrip("/")
        parts = relative.split("/")
        if len(parts) != 2:
            ignored.append({"path": entry.path, "reason": "not inside a genre folder"})
            continue
        folder, name = parts
        if folder not in GENRES:
            ignored.append({"path": entry.path, "reason": f"unknown genre folder {folder!r}"})
            continue
        match = _CLIP_NAME.match(name)
        if not match:
            ignored.append({"path": entry.path, "reason": "name is not <genre>.NNNNN.au|wav"})
            continue
        if match["genre"].lower() != folder:
            ignored.append(
                {
                    "path": entry.path,
                    "reason": f"file of genre {match['genre']!r} in folder {folder!r}",
                }
            )
            continue
        track_id = f"{folder}.{match['index']}"
        if track_id in clips:
            ignored.append({"path": entry.path, "reason": f"duplicate of {clips[track_id].path}"})
            continue
        clips[track_id] = Clip(
            track_id=track_id,
            genre=folder,
            label=GENRES.index(folder),
            path=entry.path,
            size=entry.size or 0,
            mtime_ns=entry.mtime_ns or 0,
        )
    ordered = sorted(clips.values(), key=lambda c: (c.label, c.track_id))
    return ordered, ignored


def _synthetic_marker(fs: pafs.FileSystem, base: str) -> dict | None:
    marker = join(base, "synthetic.json")
    if fs.get_file_info(marker).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(marker) as f:
        return json.loads(f.read().decode())
