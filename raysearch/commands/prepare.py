"""``raysearch prepare`` (``python -m raysearch.prepare``): GTZAN audio → Parquet spectrogram
shards with Ray Data.

The options become a :class:`~raysearch.data.defaults.ShardRequest` (a
:class:`SpectrogramConfig` from ``--features`` / ``--n-mels``, a :class:`SplitSpec` from
``--split`` / ``--split-seed`` / ``--split-lists``, the synthetic set's parameters); the work
is :func:`raysearch.data.defaults.ensure_shards`.
"""

from __future__ import annotations

import argparse
import json
import sys

from raysearch.access import check_location
from raysearch.commands.options import add_ray_arguments, fail, positive_int, program, ray_options
from raysearch.data.defaults import ShardRequest, SyntheticSet, ensure_shards
from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.data.split import SEGMENT_SPLIT_WARNING, SplitSpec
from raysearch.errors import UserError


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """The spectrogram and split options (``prepare``'s, and ``tune --data``'s)."""
    group = parser.add_argument_group("spectrogram and split")
    group.add_argument(
        "--features",
        choices=["stft", "mel"],
        default="stft",
        help="stft: the report's 513-bin STFT magnitude in dB; mel: librosa's mel filterbank "
        "on the STFT power, in dB (10*log10, ref 1.0, floor -100 dB), --n-mels bands "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--n-mels",
        type=positive_int,
        default=128,
        help="mel bands with --features mel (a segment is N_MELS x 129); at most 308 with "
        "the STFT's 1024 window (default: %(default)s)",
    )
    group.add_argument(
        "--split",
        choices=["random", "filtered", "segment"],
        default="random",
        help="random: stratified 60/10/30 %% of tracks per genre; filtered: the "
        "artist-filtered split of Kereliuk, Sturm & Larsen (real GTZAN only); segment: "
        "stratified 60/10/30 %% of SEGMENTS per genre, whatever their track, as the report "
        "most likely did (overlapping audio of one track in train and test: inflates test "
        "accuracy; only for measuring that) (default: %(default)s)",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the random and segment splits (default: %(default)s)",
    )
    group.add_argument(
        "--split-lists",
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="use three files of track ids (one per line) as the split; their contents are "
        "part of the settings, so editing one gives new shards",
    )


def build_parser() -> argparse.ArgumentParser:
    from raysearch.data import synth

    parser = argparse.ArgumentParser(
        prog=program("prepare"),
        description="Turn GTZAN (or the synthetic mini-GTZAN) into Parquet spectrogram shards: "
        "mono 22,050 Hz, STFT 1024 / hop 512, magnitude in dB (or log-mel with --features "
        "mel), 19 segments of 3 s per 30 s clip, split by track (by segment with --split "
        "segment). Writes "
        "SHARDS/segments/split={train,val,test}/*.parquet and SHARDS/manifest.json. "
        "Re-running with the same settings does no work.",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="GTZAN root (genres/<genre>/*.au, genres_original/<genre>/*.wav, "
        "local path or s3:// / gs:// URI); default: generate or reuse the "
        "synthetic mini-GTZAN in the cache",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="shard folder (path or URI); default: a folder in the cache named "
        "after the input and settings",
    )
    add_shard_arguments(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace shards made with other settings at --out"
    )
    parser.add_argument(
        "--clips-per-task",
        type=positive_int,
        default=None,
        help="clips one Ray task decodes, transforms and writes (default: 25, fewer when the "
        "cluster has more CPUs than tasks; it never changes the shards' contents)",
    )
    synthetic = parser.add_argument_group("synthetic default (without --data)")
    synthetic.add_argument(
        "--synthetic-clips",
        type=positive_int,
        default=synth.DEFAULT_CLIPS_PER_GENRE,
        help="clips per genre (default: %(default)s)",
    )
    synthetic.add_argument(
        "--synthetic-duration",
        type=float,
        default=synth.DEFAULT_DURATION,
        help="clip length in seconds (default: %(default)g)",
    )
    synthetic.add_argument(
        "--synthetic-seed",
        type=int,
        default=synth.DEFAULT_SEED,
        help="generator seed (default: %(default)s)",
    )
    add_ray_arguments(parser)
    return parser


def spectrogram_from_args(args: argparse.Namespace) -> SpectrogramConfig:
    """The spectrogram settings the arguments describe (a UserError names a bad one)."""
    return SpectrogramConfig(features=args.features, n_mels=args.n_mels)


def split_from_args(args: argparse.Namespace) -> SplitSpec:
    if args.split_lists:
        return SplitSpec(kind="lists", lists=tuple(args.split_lists))
    return SplitSpec(kind=args.split, seed=args.split_seed)


def request_from_args(args: argparse.Namespace) -> ShardRequest:
    return ShardRequest(
        data=args.data,
        out=args.out,
        spectrogram=spectrogram_from_args(args),
        split=split_from_args(args),
        synthetic=SyntheticSet(args.synthetic_clips, args.synthetic_duration, args.synthetic_seed),
        overwrite=args.overwrite,
        clips_per_task=args.clips_per_task,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        request = request_from_args(args)
        if request.data:
            check_location(request.data, "--data")
        if request.out:
            check_location(request.out, "--out", write=True)
        if request.split.level == "segment":
            print(f"warning: {SEGMENT_SPLIT_WARNING}", file=sys.stderr)
        result = ensure_shards(request, ray_options(args).connect)
    except UserError as exc:
        return fail(str(exc))
    manifest = result.manifest
    counts = manifest["counts"]
    state = "up to date, nothing done" if result.reused else f"written in {manifest['elapsed_s']} s"
    print(f"shards: {result.out} ({state})")
    print(f"tracks: {json.dumps(counts['tracks'])}  segments: {json.dumps(counts['segments'])}")
    print(
        f"segment shape: {manifest['shape']} {manifest['dtype']} "
        f"({manifest.get('features', 'stft')}), split by {manifest.get('split_level', 'track')}; "
        f"skipped {counts['skipped']}, left out {counts['left_out']}, "
        f"ignored {counts['ignored']}"
    )
    for skip in manifest["skipped"]:
        print(f"skipped {skip['path']}: {skip['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
