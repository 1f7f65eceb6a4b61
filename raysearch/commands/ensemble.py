"""``raysearch ensemble EXPERIMENT`` (``python -m raysearch.ensemble``): build the ensemble of a
search's completed networks again from their kept predictions, keep it beside the experiment
(``ensemble.json``) and rewrite ``results/`` with it. The work is in
:mod:`raysearch.results.search_ensemble` and
:func:`raysearch.results.write.build_search_ensemble`."""

from __future__ import annotations

import argparse
import os
import sys

from raysearch.access import check_location
from raysearch.commands.options import fail, program
from raysearch.errors import UserError
from raysearch.results.ensemble import DEFAULT_ROUNDS
from raysearch.results.records import load_experiment, records_from_experiment
from raysearch.results.search_ensemble import ensemble_summary, summary_line
from raysearch.results.write import build_search_ensemble, write_results
from raysearch.search.space import SpaceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("ensemble"),
        description="Build the ensemble of a search's completed networks (greedy forward "
        "selection with replacement on their validation predictions, from the best trial), "
        "keep it beside the experiment and rewrite the results folder with it: the ensemble "
        "row, ensemble.json (raysearch predict takes it in place of a checkpoint).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "experiment", help="experiment folder, e.g. ~/ray_results/raysearch/ratio (path or URI)"
    )
    parser.add_argument("--results", default="results", help="output folder")
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="selection rounds (the start included)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from raysearch.commands.leaderboard import baseline_if_cached
    from raysearch.storage import normalize

    args = build_parser().parse_args(argv)
    if args.rounds < 1:
        return fail(f"--rounds must be at least 1, got {args.rounds}")
    experiment = normalize(args.experiment)
    try:
        check_location(experiment, "EXPERIMENT")
        space, meta = load_experiment(experiment)
    except UserError as exc:
        return fail(str(exc))
    except (OSError, SpaceError, KeyError, ValueError) as exc:
        return fail(f"{experiment}: not a raysearch experiment ({exc})")
    records = records_from_experiment(experiment)
    baseline = baseline_if_cached(meta.get("shards"))
    try:
        result = build_search_ensemble(space, records, experiment, meta, args.rounds)
    except UserError as exc:
        return fail(str(exc))
    write_results(
        space, records, args.results, experiment, meta, baseline=baseline, ensemble=result,
        measure=True,
    )  # fmt: skip
    entry = ensemble_summary(result, baseline.test_track_acc if baseline else None)
    print(summary_line(entry))
    print(f"-> {os.path.join(args.results, 'ensemble.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
