"""``raysearch baseline --shards S`` (``python -m raysearch.baseline``): the classical baseline
of a shard set alone (MFCC statistics + logistic regression, C chosen on validation), cached
beside the shards. The work is :func:`raysearch.baseline.shards.shard_baseline`."""

from __future__ import annotations

import argparse
import json
import sys

from raysearch.commands.options import add_ray_arguments, fail, program, ray_options
from raysearch.errors import UserError
from raysearch.search.profiles import PROFILES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("baseline"),
        description="The classical baseline of a shard set: per 3 s segment, the mean and "
        "standard deviation of 20 MFCCs and of the spectral centroid, computed from the "
        "shards' own spectrograms; standardised; logistic regression with C chosen on the "
        "validation split only; test segment accuracy and track accuracy (the same vote as "
        "the CNN rows). Computed once and cached in SHARDS/baseline.json; a search "
        "(raysearch tune) shows it beside its leaderboard. No Ray, except to prepare the "
        "synthetic default's shards when no --shards is given.",
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch prepare (path or URI); default: the synthetic "
        "default's shards (of --profile when given), prepared first if needed",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="without --shards: the synthetic default as this profile sizes it (the shards "
        "`raysearch tune --profile P` searches) (default: none, the plain default)",
    )
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="compute it again even when SHARDS/baseline.json holds it (and replace that file)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of text"
    )
    add_ray_arguments(parser)  # only used to prepare the default's shards
    return parser


def describe(shards: str, result, reused: bool, meta: dict) -> str:
    """The result in a few lines of text."""
    from raysearch.baseline.cache import cache_path

    how = (
        f"cached in {cache_path(shards)}"
        if reused
        else f"computed in {result.features_s:.1f} s (features) + {result.fit_s:.1f} s "
        f"(fits); cached in {cache_path(shards)}"
    )
    curve = ", ".join(
        f"{c:g}: {a:.3f}" for c, a in zip(result.c_grid, result.val_acc_by_c, strict=True)
    )
    lines = [
        f"{result.label} on {shards}",
        f"  data: {meta['data']}, {meta['features']} features, split by {meta['split_level']}",
        f"  {result.description}",
        f"  validation segment accuracy by C: {curve}",
        f"  validation: segment {result.val_acc:.3f}, track {result.val_track_acc:.3f}",
        f"  test: segment {result.test_acc:.3f} ({result.test_segments} segments), "
        f"track {result.test_track_acc:.3f} ({result.test_tracks} tracks)",
        f"  {how}",
    ]
    if not result.converged:
        lines.append(f"  note: lbfgs stopped at its iteration limit for C={result.c:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from raysearch.baseline.shards import shard_baseline
    from raysearch.data.defaults import ShardRequest, ensure_shards
    from raysearch.data.pipeline import shard_meta
    from raysearch.storage import normalize

    args = build_parser().parse_args(argv)
    try:
        if args.shards and args.profile:
            raise UserError("--profile sizes the synthetic default: give it without --shards")
        if args.shards:
            shards = normalize(args.shards)
        else:
            profile = PROFILES[args.profile] if args.profile else None
            request = (
                ShardRequest(synthetic=profile.synthetic, spectrogram=profile.spectrogram)
                if profile
                else ShardRequest()
            )
            shards = ensure_shards(request, ray_options(args).connect).out
        meta = shard_meta(shards, warn=lambda line: print(line, file=sys.stderr))
        result, reused = shard_baseline(
            shards, recompute=args.recompute, warn=lambda line: print(line, file=sys.stderr)
        )
    except UserError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps({**meta, "reused": reused, **result.to_dict()}))
    else:
        print(describe(shards, result, reused, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
