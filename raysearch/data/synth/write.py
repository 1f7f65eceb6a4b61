"""The synthetic set on disk: ``ROOT/genres_original/<genre>/<genre>.NNNNN.wav`` (16-bit PCM
mono at 22,050 Hz) plus ``ROOT/synthetic.json``, which records the generator's parameters so
that other code can tell the set is synthetic and whether a folder matches the parameters
asked for. Every file is written atomically; clips are rendered in a process pool."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

from raysearch.data import GENRES
from raysearch.data.synth.render import SAMPLE_RATE, synthesize_clip
from raysearch.storage import write_bytes_atomic, write_text_atomic

DEFAULT_CLIPS_PER_GENRE = 20
DEFAULT_DURATION = 6.0  # seconds; small so a CPU can train on it (GTZAN clips are 30 s)
DEFAULT_SEED = 0

GENERATOR_NAME = "raysearch.synth"  # recorded in synthetic.json: keep it, or old sets go unread
GENERATOR_VERSION = "raysearch-synth-1"
MANIFEST_NAME = "synthetic.json"
AUDIO_DIR = "genres_original"


def clip_path(root: str | Path, genre: str, index: int) -> Path:
    """``root/genres_original/<genre>/<genre>.NNNNN.wav`` (GTZAN's naming)."""
    return Path(root) / AUDIO_DIR / genre / f"{genre}.{index:05d}.wav"


def manifest(clips_per_genre: int, duration: float, seed: int) -> dict[str, object]:
    """The parameters recorded in ``synthetic.json`` (without the completion flag)."""
    return {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "synthetic": True,
        "seed": int(seed),
        "clips_per_genre": int(clips_per_genre),
        "duration": float(duration),
        "sample_rate": SAMPLE_RATE,
        "subtype": "PCM_16",
        "genres": list(GENRES),
    }


def read_manifest(root: str | Path) -> dict[str, object] | None:
    """``root/synthetic.json`` if it exists and was written by this generator, else None."""
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == GENERATOR_NAME else None


def _same_parameters(found: dict[str, object], wanted: dict[str, object]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


def matches(
    root: str | Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    duration: float = DEFAULT_DURATION,
    seed: int = DEFAULT_SEED,
) -> bool:
    """Whether ``root`` holds a complete synthetic set made with exactly these parameters."""
    found = read_manifest(root)
    return (
        found is not None
        and found.get("complete") is True
        and _same_parameters(found, manifest(clips_per_genre, duration, seed))
        and all(clip_path(root, g, i).exists() for g in GENRES for i in range(clips_per_genre))
    )


def _write_manifest(root: Path, params: dict[str, object], complete: bool) -> None:
    write_text_atomic(
        str(root / MANIFEST_NAME), json.dumps({**params, "complete": complete}, indent=2) + "\n"
    )


def _write_clip(job: tuple[Path, str, int, int, float]) -> Path:
    """Synthesize one clip and write it atomically."""
    root, genre, index, seed, duration = job
    path = clip_path(root, genre, index)
    audio = synthesize_clip(genre, index, seed, duration)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    write_bytes_atomic(str(path), buffer.getvalue(), durable=False)  # made again if lost
    return path


def _remove_stale(root: Path, clips_per_genre: int) -> None:
    """Delete leftovers of an earlier synthetic set: clips beyond the count and temp files."""
    for genre in GENRES:
        folder = root / AUDIO_DIR / genre
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{genre}.*.wav"):
            number = path.name[len(genre) + 1 : -len(".wav")]
            if number.isdigit() and int(number) >= clips_per_genre:
                path.unlink()
        for path in folder.glob(".*.tmp"):
            path.unlink()


def _run_jobs(jobs: list[tuple[Path, str, int, int, float]], workers: int) -> Iterator[Path]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_write_clip, jobs)
        return
    chunksize = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_write_clip, jobs, chunksize=chunksize)


def _report(done: Iterable[Path], total: int, started: float) -> None:
    """Print progress to stderr every 10 %."""
    next_mark = 1
    for count, _ in enumerate(done, start=1):
        if count * 10 >= next_mark * total:
            next_mark = count * 10 // total + 1
            elapsed = time.perf_counter() - started
            print(
                f"synth: {count}/{total} clips ({100 * count // total}%), {elapsed:.1f} s",
                file=sys.stderr,
            )


def generate(
    out: str | Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    duration: float = DEFAULT_DURATION,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Write the synthetic set under ``out`` and return ``out`` (the dataset root).

    If ``out/synthetic.json`` already records the same parameters and every file exists, nothing is
    done; with the same parameters but missing files, only those are written. A folder holding WAV
    files but no ``synthetic.json`` from this generator (e.g. real GTZAN) is never overwritten.
    """
    if clips_per_genre < 1:
        raise ValueError("clips_per_genre must be at least 1")
    if duration <= 0:
        raise ValueError("duration must be positive")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    root = Path(out)
    params = manifest(clips_per_genre, duration, seed)
    found = read_manifest(root)
    jobs = [
        (root, g, i, int(seed), float(duration)) for g in GENRES for i in range(clips_per_genre)
    ]
    if found is not None and _same_parameters(found, params):
        jobs = [job for job in jobs if not clip_path(root, job[1], job[2]).exists()]
        if not jobs and found.get("complete") is True:
            return root
    elif found is None and any((root / AUDIO_DIR).glob("*/*.wav")):
        raise FileExistsError(
            f"{root / AUDIO_DIR} holds audio that is not a synthetic set; refusing to overwrite it"
        )
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root, params, complete=False)
    _remove_stale(root, clips_per_genre)
    for genre in GENRES:
        (root / AUDIO_DIR / genre).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = _run_jobs(jobs, workers)
    if progress:
        _report(done, len(jobs), started)
    else:
        for _ in done:
            pass
    _write_manifest(root, params, complete=True)
    return root
