"""``raysearch tune --space ratio`` (``python -m raysearch.tune``): the search's command line.

Reads the space (a file or a packaged name, with ``--profile``, ``--trials``, ``--epochs``,
``--repeats``, ``--trials-per-gpu``, ``--name``; on ``--resume`` the space the experiment
started with), checks the bucket locations it is given (:mod:`raysearch.access`), prepares
or reuses the shards of ``--data`` (beside the storage) or of the synthetic default when no
``--shards`` is given, joins or starts Ray, and runs :func:`raysearch.search.run.run_search`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from raysearch.access import check_location
from raysearch.commands.options import (
    add_device_arguments,
    add_ray_arguments,
    fail,
    program,
    ray_options,
)
from raysearch.commands.prepare import add_shard_arguments, spectrogram_from_args, split_from_args
from raysearch.data.defaults import ShardRequest, ensure_shards, shards_beside
from raysearch.data.discover import DataError
from raysearch.data.pipeline import read_manifest
from raysearch.errors import UserError
from raysearch.results.summary import finished
from raysearch.search.profiles import PROFILES
from raysearch.search.run import DEFAULT_STORAGE, run_search
from raysearch.search.space import AUTO, SearchSpace, SpaceError, load_space, packaged_spaces
from raysearch.storage import is_uri, join, normalize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("tune"),
        description="Search SE-CNN hyperparameters with Ray Tune + Optuna from a YAML "
        "search-space file, then write results/leaderboard.csv, results/leaderboard.md and "
        "the report's tables. Without --shards, prepares the shards of --data (or of the "
        "synthetic mini-GTZAN) first.",
    )
    parser.add_argument(
        "--space",
        default=None,
        help="search-space YAML file, or the name of a packaged space "
        f"({', '.join(packaged_spaces())}); on --resume, optional",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="size the embedded default and the search for a machine: "
        + "; ".join(f"{name}: {p.summary}" for name, p in PROFILES.items())
        + " (default: none, the space as written)",
    )
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch.commands.prepare (path or s3:// URI); "
        "default: those of --data, else prepare / reuse the synthetic mini-GTZAN",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="ROOT",
        help="GTZAN root (genres/<genre>/*.au, genres_original/<genre>/*.wav; path or s3:// "
        "URI): prepare its shards with Ray Data on the cluster's CPUs, or reuse them when the "
        "audio and the spectrogram / split settings below are unchanged, into "
        "STORAGE/_shards/<key> (where every node reaches them); then search them. Not with "
        "--shards",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="configurations to evaluate (default: the space's 'trials')",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per trial (default: the space's train.epochs)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="seeds per configuration (default: the space's 'repeats')",
    )
    parser.add_argument(
        "--trials-per-gpu",
        type=trials_per_gpu,
        default=None,
        metavar="K|auto",
        help="trials sharing one GPU: K (resources.gpu = 1/K), or auto: K from the GPU's "
        "memory, the splits' size and the space's largest network, printed before the first "
        "trial (the packaged spaces' resources.gpu: auto; a number the space sets wins over "
        "auto). Default: the space's. Each trial holds its splits and activations on the GPU "
        "(docs/performance.md, trials per GPU)",
    )
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="where Tune keeps the experiment (path, shared mount or s3:// URI; on a "
        "multi-node cluster it must be shared) (default: %(default)s)",
    )
    parser.add_argument("--name", default=None, help="experiment name (default: the space's)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted experiment of this name, with the space it started with",
    )
    parser.add_argument(
        "--results",
        default="results",
        help="folder for leaderboard.csv, leaderboard.md, tables and plots (default: %(default)s)",
    )
    parser.add_argument(
        "--mlflow",
        default=None,
        metavar="URI",
        help="also log every trial to this MLflow tracking URI (file:PATH, sqlite:///PATH, "
        "http://HOST:PORT): parameters, per-epoch metrics, its folder with the checkpoint",
    )
    add_shard_arguments(parser)
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="do not compute the classical baseline (MFCC + logistic regression on the same "
        "shards, seconds; cached beside them) that the results show beside the CNN rows",
    )
    parser.add_argument(
        "--no-ensemble",
        dest="ensemble",
        action="store_false",
        help="do not build the ensemble of the completed networks at the end (greedy selection "
        "on their validation predictions; `raysearch ensemble EXPERIMENT` builds it later)",
    )
    add_device_arguments(parser, "every trial trains")
    add_ray_arguments(parser)
    return parser


SHARD_OPTIONS = ("features", "n_mels", "split", "split_seed", "split_lists")  # with --data only


def check_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, storage: str
) -> None:
    """What can be checked before Ray starts: options that go together, and every bucket
    location (it exists, credentials are found, it can be read; the storage written)."""
    if args.data and args.shards:
        raise DataError("--data and --shards: give one (--data prepares shards from audio)")
    if args.profile and (args.data or args.shards):
        given = "--data" if args.data else "--shards"
        raise SpaceError(f"--profile sizes the synthetic default: give it without {given}")
    changed = [n for n in SHARD_OPTIONS if getattr(args, n) != parser.get_default(n)]
    if changed and not args.data:
        options = ", ".join("--" + n.replace("_", "-") for n in changed)
        raise DataError(f"{options}: describe the shards of --data; give --data ROOT too")
    check_location(storage, "--storage", write=True)
    if args.data:
        check_location(normalize(args.data), "--data")
    if args.shards:
        check_location(normalize(args.shards), "--shards")
        read_manifest(normalize(args.shards))


def trials_per_gpu(text: str) -> int | str:
    """argparse type of --trials-per-gpu: a whole number or auto."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def search_space_for(args: argparse.Namespace, storage: str) -> SearchSpace:
    """The space to run: the file's (with --trials/--epochs/--repeats/--name), or on --resume
    the one the experiment started with, saved beside it. A resumed search never silently
    changes: a different --space file or any override is an error."""
    from raysearch.results.records import load_experiment

    if not args.resume:
        if not args.space:
            raise SpaceError("--space is required (a file or a packaged space's name)")
        space = load_space(args.space)
        if args.profile:
            space = PROFILES[args.profile].apply(space, args.trials)
        space = space.with_overrides(args.trials, args.epochs, args.repeats, args.trials_per_gpu)
        if args.trials_per_gpu == AUTO and space.resources.gpu != AUTO:
            print(
                f"note: {space.source} sets resources.gpu: {space.resources.gpu:g}, which wins "
                "over --trials-per-gpu auto",
                flush=True,
            )
        return space.renamed(args.name) if args.name else space
    for flag in ("trials", "epochs", "repeats", "trials_per_gpu"):
        if getattr(args, flag) is not None:
            raise SpaceError(
                f"--{flag.replace('_', '-')} cannot change on --resume: the experiment keeps "
                "the space it started with (start another with --name to change it)"
            )
    given = None
    if args.space:
        given = load_space(args.space)
        if args.profile:
            given = PROFILES[args.profile].apply(given)
    name = args.name or (given.name if given else None)
    if not name:
        raise SpaceError("--resume needs --name or --space to find the experiment")
    experiment = join(storage, name)
    try:
        saved, _ = load_experiment(experiment)
    except (OSError, FileNotFoundError, ValueError) as exc:
        raise SpaceError(f"{experiment}: no raysearch experiment to resume ({exc})") from exc
    if given is not None:
        given = given.renamed(name) if given.name != name else given
        if given.raw != saved.raw:
            differing = sorted(
                k for k in set(given.raw) | set(saved.raw) if given.raw.get(k) != saved.raw.get(k)
            )
            raise SpaceError(
                f"--space {args.space} differs from the space {name} started with "
                f"(keys: {', '.join(differing)}); --resume uses the saved one: drop --space, "
                "or start another search with --name"
            )
    return saved


def shard_request(args: argparse.Namespace, storage: str) -> ShardRequest:
    """The shards a search without ``--shards`` runs on: those of ``--data`` (kept beside the
    storage), else the synthetic default, sized by the profile when one is given."""
    if args.data:
        data = normalize(args.data)
        spectrogram, split = spectrogram_from_args(args), split_from_args(args)
        return ShardRequest(
            data=data,
            out=shards_beside(storage, data, spectrogram, split),
            spectrogram=spectrogram,
            split=split,
            # changed audio: a new search prepares it again, a resumed one keeps its data
            changed_input="keep" if args.resume else "replace",
        )
    if args.profile:
        profile = PROFILES[args.profile]
        return ShardRequest(synthetic=profile.synthetic, spectrogram=profile.spectrogram)
    return ShardRequest()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.time()
    ray = ray_options(args)
    try:
        storage = normalize(args.storage)
        check_arguments(parser, args, storage)
        space = search_space_for(args, storage)
        if args.shards:
            ray.connect()
            shards = normalize(args.shards)
        else:
            prepared = ensure_shards(shard_request(args, storage), ray.connect)
            shards = prepared.out
            if args.data:
                state = "up to date, nothing done" if prepared.reused else "prepared"
                if prepared.input_changed:
                    state = "the audio changed since; the resumed search keeps these shards"
                print(f"shards of {args.data}: {shards} ({state})", flush=True)
        if not is_uri(storage):
            os.makedirs(storage, exist_ok=True)
        print(
            f"search '{space.name}': {space.trials} configuration(s) x {space.repeats} "
            f"seed(s), sampler {space.sampler}, scheduler {space.scheduler.type}; "
            f"shards {shards}; storage {join(storage, space.name)}",
            flush=True,
        )
        summary = run_search(
            space,
            shards,
            storage,
            args.results,
            resume=args.resume,
            use_gpu=args.use_gpu,
            mlflow_uri=args.mlflow,
            baseline=args.baseline,
            ensemble=args.ensemble,
        )
    except UserError as exc:
        return fail(str(exc))
    board = os.path.join(args.results, "leaderboard.csv")
    if not finished(summary):
        print(f"interrupted after {time.time() - started:.0f} s; leaderboard so far: {board}")
        return 130  # as a shell reports a command ended by Ctrl+C
    print(f"done in {time.time() - started:.0f} s; leaderboard: {board}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
