"""``raysearch synth --out DIR`` (``python -m raysearch.synth``): write the synthetic
mini-GTZAN (:mod:`raysearch.data.synth`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from raysearch.commands.options import program
from raysearch.data.synth import (
    DEFAULT_CLIPS_PER_GENRE,
    DEFAULT_DURATION,
    DEFAULT_SEED,
    generate,
    matches,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("synth"),
        description=(
            "Generate the synthetic mini-GTZAN: real 16-bit mono WAV files at 22,050 Hz in GTZAN's "
            "layout (DIR/genres_original/<genre>/<genre>.NNNNN.wav, ten genres) plus "
            "DIR/synthetic.json. It is the project's embedded default dataset, for developing and "
            "testing the pipeline and the hyperparameter search where GTZAN itself is unavailable; "
            "each genre has its own tempo, rhythm, timbre, harmony and noise signature with random "
            "per-clip variation, so the classes are learnable but overlap. Re-running with the "
            "same parameters does nothing."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="dataset root to write (created if missing; an existing matching set is kept)",
    )
    parser.add_argument(
        "--clips-per-genre",
        type=int,
        metavar="N",
        default=DEFAULT_CLIPS_PER_GENRE,
        help="clips per genre (GTZAN has 100)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_DURATION,
        help="clip length in seconds (GTZAN's clips are 30 s; short clips keep CPU training fast)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        default=DEFAULT_SEED,
        help="random seed; the same seed gives byte-identical files",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=1,
        help="worker processes (clips are rendered in parallel when K > 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if matches(args.out, args.clips_per_genre, args.duration, args.seed):
        print(f"{args.out} already holds this synthetic set; nothing to do", file=sys.stderr)
        return 0
    started = time.perf_counter()
    try:
        root = generate(
            args.out,
            clips_per_genre=args.clips_per_genre,
            duration=args.duration,
            seed=args.seed,
            workers=args.workers,
            progress=True,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(
        f"synthetic GTZAN at {root} ({10 * args.clips_per_genre} clips, {elapsed:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
