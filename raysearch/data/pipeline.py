"""The Ray Data pipeline: GTZAN audio → Parquet spectrogram shards, partitioned by split.

::

    discover(root) → assign_splits → ray.data.from_items(clips)
        → map_batches(decode + STFT + dB + 19 segments)   (every CPU of the Ray cluster)
        → write_parquet(partition_cols=["split"])          (out/segments/split=train/*.parquet)
    + out/manifest.json

Row schema: ``track_id`` (str), ``genre`` (str), ``label`` (int8, index in GENRES),
``segment`` (int8, 0..18), ``split`` (hive partition), ``spectrogram`` (fixed-shape tensor
(F, 129), float16; F = 513 STFT bins for ``--features stft``, ``n_mels`` for ``mel``). float16
halves the size of GTZAN's 19,000 segments (2.5 GB instead of 5 GB for STFT) and keeps dB
values to about 0.03 dB, far below what a spectrogram classifier resolves. Ray reads the column
back as an (F, 129) tensor; plain pyarrow / pandas read it as a flat float16 list of F * 129
values (reshape with the manifest's ``shape``).

Splits are by track (every segment of a track in one split, manifest ``split_level``
``"track"``) except the segment split (``"segment"``), where each segment row carries its own
split and one track's segments are spread over train, val and test.

A corrupt, empty, non-audio or too-short file is skipped and listed in the manifest with its
reason; stereo or other-rate files are converted and listed too. The job never dies for one
file. Re-running with the same settings on the same input does no work; a different setting
never overwrites existing shards unless asked to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np

from raysearch.data import GENRES
from raysearch.data.discover import Clip, DataError, Discovery, discover
from raysearch.data.spectrogram import (
    SpectrogramConfig,
    load_audio,
    num_segments,
    segment_clip_with_sums,
)
from raysearch.data.split import (
    SPLITS,
    SplitAssignment,
    SplitSpec,
    assign_splits,
    split_key,
)
from raysearch.storage import (
    exists,
    is_uri,
    join,
    read_bytes,
    read_text,
    resolve,
    unique_sibling,
    write_text_atomic,
)

PIPELINE_VERSION = 1  # bump when the shard contents change for the same settings
MANIFEST = "manifest.json"
SEGMENTS = "segments"  # Parquet lives in SHARDS/segments/ so pandas.read_parquet sees only Parquet
# Dictionary encoding and min/max statistics for the small columns only: on the float16
# spectrograms they doubled the write time and saved nothing (benchmarks/prepare_bench.py).
PARQUET_OPTIONS = {
    "use_dictionary": ["track_id", "genre"],
    "write_statistics": ["track_id", "genre", "label", "segment"],
}
OUTCOMES = "_outcomes"  # per-batch clip outcomes while the job runs; removed before it ends
log = logging.getLogger(__name__)

# shards of the same settings made from other audio: an error, made again, or used as they are
ChangedInput = Literal["refuse", "replace", "keep"]


@dataclass
class PrepareResult:
    out: str
    manifest: dict
    reused: bool  # True when existing shards were used and no work was done
    input_changed: bool = False  # the audio differs from the one the shards were made from


@dataclass
class _ClipOutcome:
    """What happened to one clip, written by the map tasks for the driver's manifest."""

    track_id: str
    path: str
    split: str  # the clip item's split: one name, or one per segment slot joined by ","
    splits: list[str] = field(default_factory=list)  # the split of each segment written
    segments: int = 0
    seconds: float = 0.0
    error: str | None = None
    converted: dict = field(default_factory=dict)
    # running sums over the dB values of the clip's train segments, for the train mean / std
    total: float = 0.0
    total_sq: float = 0.0
    count: int = 0


def settings_hash(config: SpectrogramConfig, split: SplitSpec) -> str:
    """The hash of every setting that decides the shards' contents (the input aside).

    The split part is :func:`raysearch.data.split.split_key`: for ``--split-lists`` it reads the
    list files, so a list edited in place changes the hash.
    """
    return _settings_hash(config, split_key(split))


def _settings_hash(config: SpectrogramConfig, split_settings: dict) -> str:
    spectrogram = config.to_dict()
    if config.features == "stft":
        # features and n_mels came later and change nothing in STFT shards: leaving them out
        # keeps the hash, and so the reuse, of the STFT shards made before they existed
        del spectrogram["features"], spectrogram["n_mels"]
    payload = {"spectrogram": spectrogram, "split": split_settings, "pipeline": PIPELINE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def input_fingerprint(clips: list[Clip]) -> str:
    listing = [(c.track_id, c.size, c.mtime_ns) for c in clips]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def read_manifest(shards: str) -> dict:
    """The manifest of a shard folder; :class:`DataError` if there is none."""
    path = join(str(shards), MANIFEST)
    if not exists(path):
        raise DataError(
            f"{shards}: no {MANIFEST} (not a raysearch shard folder; "
            f"run python -m raysearch.prepare first)"
        )
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt manifest ({exc})") from exc


def data_source(manifest: dict) -> str:
    """Where the shards' audio came from, in words: the synthetic mini-GTZAN with its
    parameters, or the user's root."""
    given = manifest.get("input", {})
    synthetic = given.get("synthetic")
    if synthetic:
        return (
            f"synthetic mini-GTZAN ({synthetic.get('clips_per_genre')} clips x "
            f"{synthetic.get('duration', 0):g} s per genre, seed {synthetic.get('seed')})"
        )
    return f"audio at {given.get('root', '?')}"


def shard_meta(shards: str, warn: Callable[[str], None] | None = print) -> dict:
    """What a run or a search says of its shards (its results carry it): their location,
    where their audio came from, their features and split level. A segment split is
    ``warn``-ed about (:data:`~raysearch.data.split.SEGMENT_SPLIT_WARNING`)."""
    from raysearch.data.split import SEGMENT_SPLIT_WARNING

    manifest = read_manifest(shards)
    meta = {
        "shards": shards,
        "data": data_source(manifest),
        "features": manifest.get("features", "stft"),
        "split_level": manifest.get("split_level", "track"),
    }
    if meta["split_level"] == "segment" and warn is not None:
        warn(f"warning: {shards} is split by segment: {SEGMENT_SPLIT_WARNING}")
    return meta


def split_path(shards: str, split: str) -> str:
    """Folder of one split's Parquet files."""
    return join(str(shards), SEGMENTS, f"split={split}")


def segment_clips(
    batch: dict[str, np.ndarray], config: dict, outcome_dir: str
) -> dict[str, np.ndarray]:
    """Ray Data UDF: decode each clip of the batch and cut it into spectrogram segments.

    A clip's ``split`` is one split name for all its segments, or (segment split) one name per
    segment slot joined by ``","``. What happened to each clip (segments made, conversions, or
    why it was skipped) goes to one small JSON file per batch in ``outcome_dir``, named by the
    batch's track ids, so a retried task rewrites the same file; the driver reads them once the
    dataset is written.
    """
    spec_config = SpectrogramConfig(**config)
    columns: dict[str, list] = {k: [] for k in ("track_id", "genre", "label", "segment", "split")}
    spectrograms = []
    outcomes = []
    for i in range(len(batch["track_id"])):
        outcome = _ClipOutcome(
            str(batch["track_id"][i]), str(batch["path"][i]), str(batch["split"][i])
        )
        try:
            y, info = load_audio(read_bytes(outcome.path), spec_config.sample_rate)
            outcome.seconds = len(y) / spec_config.sample_rate
            if info["channels"] != 1:
                outcome.converted["channels"] = info["channels"]
            if info["source_rate"] != spec_config.sample_rate:
                outcome.converted["source_rate"] = info["source_rate"]
            slots = _slot_splits(outcome.split, num_segments(len(y), spec_config))
            segments, sums = segment_clip_with_sums(
                y, spec_config, counted=[s == "train" for s in slots]
            )
            if len(segments) == 0:
                raise ValueError(
                    f"too short: {outcome.seconds:.2f} s, one segment needs "
                    f"{spec_config.segment_seconds - spec_config.pad_tolerance_seconds:.1f} s"
                )
        except Exception as exc:  # one bad file must never stop a 1,000-file job
            outcome.error = str(exc) or type(exc).__name__
            outcomes.append(outcome)
            continue
        n = len(segments)
        outcome.segments = n
        outcome.splits = slots
        outcome.total, outcome.total_sq, outcome.count = sums.total, sums.total_sq, sums.count
        columns["track_id"] += [outcome.track_id] * n
        columns["genre"] += [str(batch["genre"][i])] * n
        columns["label"] += [int(batch["label"][i])] * n
        columns["segment"] += list(range(n))
        columns["split"] += outcome.splits
        spectrograms.append(segments)
        outcomes.append(outcome)
    _write_outcomes(outcome_dir, outcomes)
    shape = spec_config.shape
    return {
        "track_id": np.array(columns["track_id"], dtype=object),
        "genre": np.array(columns["genre"], dtype=object),
        "label": np.array(columns["label"], dtype=np.int8),
        "segment": np.array(columns["segment"], dtype=np.int8),
        "split": np.array(columns["split"], dtype=object),
        "spectrogram": (
            np.concatenate(spectrograms)
            if spectrograms
            else np.zeros((0, *shape), dtype=spec_config.dtype)
        ),
    }


def _slot_splits(split: str, n_segments: int) -> list[str]:
    """The split of each of a clip's ``n_segments`` segments from its item's ``split``."""
    names = split.split(",")
    if len(names) == 1:
        return names * n_segments
    if len(names) < n_segments:
        raise ValueError(f"{len(names)} segment splits for {n_segments} segments")
    return names[:n_segments]


def _write_outcomes(outcome_dir: str, outcomes: list[_ClipOutcome]) -> None:
    if not outcomes:
        return
    name = hashlib.sha1("\n".join(o.track_id for o in outcomes).encode()).hexdigest()[:20]
    payload = json.dumps([asdict(o) for o in outcomes])
    write_text_atomic(join(outcome_dir, f"{name}.json"), payload)


def _read_outcomes(outcome_dir: str) -> list[_ClipOutcome]:
    """Every outcome the map tasks wrote, one per track (a retried task's file counts once)."""
    import pyarrow.fs as pafs

    fs, path = resolve(outcome_dir)
    found: dict[str, _ClipOutcome] = {}
    for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".json"):
            continue
        with fs.open_input_stream(info.path) as f:
            for record in json.loads(f.read().decode("utf-8")):
                found[record["track_id"]] = _ClipOutcome(**record)
    return list(found.values())


def prepare(
    data_root: str,
    out: str,
    config: SpectrogramConfig | None = None,
    split: SplitSpec | None = None,
    overwrite: bool = False,
    clips_per_task: int | None = None,
    changed_input: ChangedInput = "refuse",
) -> PrepareResult:
    """Turn the GTZAN-layout folder ``data_root`` into Parquet shards under ``out``.

    Uses the running Ray cluster (``ray.init`` is the caller's, so tests and the CLI choose the
    cluster); starts a local one if none is running. ``clips_per_task`` (one Ray task decodes,
    transforms and writes that many clips): default :func:`default_clips_per_task`.
    ``changed_input``: what to do when ``out`` holds shards of these settings made from other
    audio (files added, removed or changed under ``data_root``): "refuse" (an error naming
    ``--overwrite``), "replace" (prepare again: a cache raysearch owns) or "keep" (use them as
    they are: a resumed search keeps the data it started on).
    """
    if changed_input not in get_args(ChangedInput):
        raise ValueError(f"changed_input must be refuse, replace or keep, got {changed_input!r}")
    import ray

    config = config or SpectrogramConfig()
    split = split or SplitSpec()
    started = time.time()
    discovery = discover(data_root)
    split_settings = split_key(split)  # read once: the hash and the manifest say the same
    assignment = assign_splits([c.track_id for c in discovery.clips], split, config.max_segments)
    settings = _settings_hash(config, split_settings)
    fingerprint = input_fingerprint(discovery.clips)

    out = str(out)
    existing = _existing_manifest(out)
    if existing is not None:
        same = (
            existing.get("settings_hash") == settings
            and existing.get("input", {}).get("fingerprint") == fingerprint
        )
        if same and not overwrite:
            log.info("%s: shards up to date (settings %s), nothing to do", out, settings[:12])
            return PrepareResult(out, existing, reused=True)
        same_settings = existing.get("settings_hash") == settings
        if same_settings and not overwrite and changed_input == "keep":
            log.warning("%s: the audio under %s changed since these shards were made; "
                        "kept as they are", out, data_root)  # fmt: skip
            return PrepareResult(out, existing, reused=True, input_changed=True)
        if same_settings and changed_input == "replace":
            log.warning("%s: the audio under %s changed since these shards were made; "
                        "preparing them again", out, data_root)  # fmt: skip
            overwrite = True
        if not overwrite:
            what = (
                "other spectrogram / split settings"
                if existing.get("settings_hash") != settings
                else "another input"
            )
            raise DataError(
                f"{out}: holds shards made with {what} "
                f"(settings {existing.get('settings_hash', '?')[:12]}, "
                f"now {settings[:12]}); choose another --out or pass --overwrite"
            )
    elif exists(out) and not _is_empty_dir(out) and not overwrite:
        raise DataError(
            f"{out}: exists and is not a raysearch shard folder; "
            f"choose another --out or pass --overwrite"
        )

    items = clip_items(data_root, discovery.clips, assignment.segment_splits or assignment.split_of)
    if not ray.is_initialized():
        ray.init()
    if clips_per_task is None:
        clips_per_task = default_clips_per_task(len(items), ray.cluster_resources().get("CPU", 1))
    if clips_per_task < 1:
        raise ValueError(f"clips_per_task must be >= 1, got {clips_per_task}")
    log.info("%d clips, %d per Ray task", len(items), clips_per_task)
    staging = out if is_uri(out) else unique_sibling(out, "partial")
    if is_uri(out) and overwrite and exists(out):
        fs, path = resolve(out)
        fs.delete_dir_contents(path)
    outcome_dir = join(staging, OUTCOMES)
    try:
        with _one_stage_data_context():
            dataset = segment_dataset(items, config, clips_per_task, outcome_dir)
            # No min_rows_per_file: Ray fuses the map with the write, and that option made
            # it gather up to 256 clips into one task (one core).
            dataset.write_parquet(
                join(staging, SEGMENTS), partition_cols=["split"], **PARQUET_OPTIONS
            )
        outcomes = _read_outcomes(outcome_dir)
        missing = len(items) - len(outcomes)
        if missing:  # every clip handed to Ray must come back, written or skipped
            raise RuntimeError(f"{out}: {missing} clip(s) have no outcome from the Ray tasks")
        fs, path = resolve(outcome_dir)
        fs.delete_dir(path)
        manifest = _manifest(
            discovery,
            assignment,
            outcomes,
            config,
            split,
            split_settings,
            settings,
            fingerprint,
            time.time() - started,
        )
        write_text_atomic(join(staging, MANIFEST), json.dumps(manifest, indent=1))
        if not is_uri(out):
            _move_into_place(staging, out)
    except BaseException:
        if not is_uri(out) and os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return PrepareResult(out, manifest, reused=False)


def clip_items(
    data_root: str, clips: list[Clip], split_of: Mapping[str, str | Sequence[str]]
) -> list[dict]:
    """One input row per clip that has a split: what each map task needs to find and label it.

    ``split_of`` maps a track to its split, or (segment split) to the split of each of its
    segment slots; the row's ``split`` is then those names joined by ``","`` (a plain string
    column, whatever the split's kind).
    """
    return [
        {
            "track_id": c.track_id,
            "genre": c.genre,
            "label": c.label,
            "path": _full_path(data_root, c),
            "split": _split_text(split_of[c.track_id]),
        }
        for c in clips
        if c.track_id in split_of
    ]


def _split_text(split: str | Sequence[str]) -> str:
    return split if isinstance(split, str) else ",".join(split)


def segment_dataset(
    items: list[dict], config: SpectrogramConfig, clips_per_task: int, outcome_dir: str
):
    """The map stage: a lazy Ray Dataset of segment rows, one task per ``clips_per_task`` clips.

    Build and run it inside :func:`_one_stage_data_context`.
    """
    import ray.data

    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items) // clips_per_task))
    return dataset.map_batches(
        segment_clips,
        batch_size=clips_per_task,
        fn_kwargs={"config": config.to_dict(), "outcome_dir": outcome_dir},
    )


MAX_CLIPS_PER_TASK = 25


def default_clips_per_task(clips: int, cpus: float) -> int:
    """Clips per Ray task: 25, or fewer when that would leave CPUs idle.

    25 clips (a 1-2 s task on one core) keep Ray's per-task cost (~20 ms, and three Parquet
    files per task, one per split) small: at 2 clips per task the pipeline ran at 14 clips/s
    against 30 at 25 (docs/performance.md). A cluster with many CPUs needs more tasks than
    ``clips / 25``, so the count is lowered to give every CPU about four tasks, which also
    evens out the last wave.
    """
    per_cpu = math.ceil(clips / max(1.0, 4 * float(cpus)))
    return max(1, min(MAX_CLIPS_PER_TASK, per_cpu))


@contextlib.contextmanager
def _one_stage_data_context():
    """Ray Data settings for this job's single operator (read + map fused with the write).

    Ray Data 2.60 reserves half of the cluster's CPUs for each operator
    (``op_resource_reservation_ratio`` 0.5) and, for a one-operator job, starts the second
    half only about a second later: on 2 CPUs the first second of every ``prepare`` ran one
    task at a time (measured with ``ray.timeline``; benchmarks/prepare_bench.py). Reservations
    keep several operators from starving one another; with one operator there is nothing to
    protect, so they are switched off while this dataset is built and run, and the
    caller's setting is restored afterwards.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = context.op_resource_reservation_enabled
    context.op_resource_reservation_enabled = False
    try:
        yield context
    finally:
        context.op_resource_reservation_enabled = saved


def _full_path(data_root: str, clip: Clip) -> str:
    """A location each Ray worker can open: the URI for buckets, the absolute path locally."""
    if is_uri(data_root):
        scheme = data_root.split("://", 1)[0]
        return f"{scheme}://{clip.path}"
    return clip.path


def _existing_manifest(out: str) -> dict | None:
    if not exists(join(out, MANIFEST)):
        return None
    try:
        return json.loads(read_text(join(out, MANIFEST)))
    except json.JSONDecodeError:
        return {}


def _is_empty_dir(location: str) -> bool:
    if is_uri(location):
        import pyarrow.fs as pafs

        fs, path = resolve(location)
        return not fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return os.path.isdir(location) and not os.listdir(location)


def _move_into_place(staging: str, out: str) -> None:
    """Swap the finished staging folder in, so ``out`` is never seen half-written."""
    old = None
    if os.path.exists(out):
        old = unique_sibling(out, "old")
        os.replace(out, old)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.replace(staging, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


_DB_FORMULA = {  # the manifest's spectrogram.db, per features (raysearch.data.spectrogram)
    "stft": "20*log10(max(|X|, amin)), ref=1.0",
    "mel": "10*log10(max(M @ |X|**2, amin**2)), ref=1.0, "
    "M = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels) (slaney)",
}


def _manifest(
    discovery: Discovery,
    assignment: SplitAssignment,
    outcomes: list[_ClipOutcome],
    config: SpectrogramConfig,
    split: SplitSpec,
    split_settings: dict,
    settings: str,
    fingerprint: str,
    elapsed: float,
) -> dict:
    done = [o for o in outcomes if o.error is None]
    skipped = sorted(
        (
            {"track_id": o.track_id, "path": o.path, "reason": o.error}
            for o in outcomes
            if o.error is not None
        ),
        key=lambda s: s["track_id"],
    )
    # a track counts in every split it has a segment in (one split unless split_level is segment)
    tracks: dict[str, dict[str, int]] = {s: dict.fromkeys(GENRES, 0) for s in SPLITS}
    segments: dict[str, int] = dict.fromkeys(SPLITS, 0)
    for o in done:
        for name in set(o.splits):
            tracks[name][o.track_id.split(".")[0]] += 1
        for name in o.splits:
            segments[name] += 1
    count = sum(o.count for o in done)
    mean = sum(o.total for o in done) / count if count else 0.0
    var = sum(o.total_sq for o in done) / count - mean**2 if count else 1.0
    return {
        "raysearch_shards": PIPELINE_VERSION,
        "parquet": SEGMENTS,
        "labels": list(GENRES),
        "shape": list(config.shape),
        "dtype": config.dtype,
        "features": config.features,
        "split_level": split.level,
        "settings_hash": settings,
        "spectrogram": config.to_dict()
        | {
            "window": "hann",
            "center": True,
            "db": _DB_FORMULA[config.features],
            "frames_per_segment": config.segment_frames,
            "start_frames": [config.start_frame(k) for k in range(config.max_segments)],
        },
        "split": split_settings
        | {
            "tracks": {s: sorted(o.track_id for o in done if s in o.splits) for s in SPLITS},
            "left_out": assignment.left_out,
        },
        "input": {
            "root": discovery.root,
            "layout": discovery.layout,
            "clips_found": len(discovery.clips),
            "fingerprint": fingerprint,
            "synthetic": discovery.synthetic,
        },
        "counts": {
            "tracks": {s: sum(tracks[s].values()) for s in SPLITS},
            "segments": segments,
            "tracks_per_genre": tracks,
            "skipped": len(skipped),
            "left_out": len(assignment.left_out),
            "ignored": len(discovery.ignored),
        },
        "train_stats": {"mean": mean, "std": float(np.sqrt(max(var, 1e-12)))},
        "skipped": skipped,
        "converted": sorted(
            ({"track_id": o.track_id, **o.converted} for o in done if o.converted),
            key=lambda c: c["track_id"],
        ),
        "padded": sorted(
            o.track_id
            for o in done
            if 0 < o.seconds < config.segment_seconds + (o.segments - 1) * config.step_seconds
        ),
        "ignored": discovery.ignored,
        "elapsed_s": round(elapsed, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
