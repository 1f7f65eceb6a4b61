"""``raysearch leaderboard EXPERIMENT`` (``python -m raysearch.leaderboard``): rebuild
``results/`` (leaderboard, tables, plots) from a Tune experiment folder, finished or
interrupted, with the classical baseline when it is cached beside the experiment's shards and
the ensemble when one beside the experiment is of its completed networks (``raysearch ensemble``
builds it). The work is in :mod:`raysearch.results`."""

from __future__ import annotations

import argparse
import os
import sys

from raysearch.access import check_location
from raysearch.commands.options import fail, program
from raysearch.errors import UserError
from raysearch.results.rank import trial_frame
from raysearch.results.records import load_experiment, records_from_experiment
from raysearch.results.search_ensemble import experiment_ensemble
from raysearch.results.write import write_results
from raysearch.search.space import SpaceError


def main(argv: list[str] | None = None) -> int:
    from raysearch.storage import normalize

    parser = argparse.ArgumentParser(
        prog=program("leaderboard"),
        description="Rebuild results/leaderboard.csv, leaderboard.md, the report's tables and "
        "the plots from a Tune experiment folder (finished or interrupted).",
    )
    parser.add_argument(
        "experiment", help="experiment folder, e.g. ~/ray_results/raysearch/ratio (path or URI)"
    )
    parser.add_argument("--results", default="results", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    experiment = normalize(args.experiment)
    try:
        check_location(experiment, "EXPERIMENT")
    except UserError as exc:
        return fail(str(exc))
    try:
        space, meta = load_experiment(experiment)
    except (OSError, FileNotFoundError, SpaceError, KeyError, ValueError) as exc:
        print(f"error: {experiment}: not a raysearch experiment ({exc})", file=sys.stderr)
        return 2
    records = records_from_experiment(experiment)
    baseline = baseline_if_cached(meta.get("shards"))
    ensemble = experiment_ensemble(experiment, trial_frame(space, records, meta))
    frame = write_results(
        space, records, args.results, experiment, meta, baseline=baseline, ensemble=ensemble,
        measure=True,
    )  # fmt: skip
    print(f"{len(frame)} trials -> {os.path.join(args.results, 'leaderboard.csv')}")
    if ensemble is None:
        print(
            "no ensemble of these completed networks beside the experiment; raysearch ensemble "
            "EXPERIMENT builds it"
        )
    if baseline is None:
        print(
            f"no classical baseline cached beside the shards ({meta.get('shards', '?')}); "
            "raysearch baseline --shards SHARDS computes it"
        )
    return 0


def baseline_if_cached(shards: str | None):
    """The baseline cached beside the experiment's shards, or None (none there, or the shards
    are gone): a rebuild never computes it."""
    from raysearch.baseline.shards import cached_baseline

    if not shards:
        return None
    try:
        return cached_baseline(shards)
    except (OSError, UserError):
        return None


if __name__ == "__main__":
    sys.exit(main())
