"""``python -m raysearch.tune --space search_spaces/ratio.yaml``: the hyperparameter search.

Ray Tune runs the trials; Optuna suggests them (TPE by default, or GP, random, grid, seeded);
ASHA stops weak trials early when the space asks for it. Each trial is a Tune function
trainable that builds the ``TorchTrainer`` of :mod:`raysearch.train` and reports every epoch
through ``ray.tune.integration.ray_train.TuneReportCallback`` — Train inside Tune as Ray 2.60
documents it (``Tuner(trainer)`` is the deprecated path and fails with Train V2).

Repeats (``repeats: k``) run each configuration k times with seeds 0..k-1 through Tune's
``Repeater``, which hands Optuna the mean. Trial drivers reserve no CPU themselves: the
TorchTrainer's workers hold the resources, and ``max_concurrent_trials`` is set to what the
cluster fits (or the space's ``concurrency``). A trial that fails is retried
(``FailureConfig``).

``--resume`` continues an interrupted experiment (Ctrl-C or SIGKILL of the driver) from its
storage with ``Tuner.restore``: finished trials are kept, unfinished ones restart, the
searcher's state comes back, and the total comes to the requested number of trials.

Results: ``results/leaderboard.csv`` and friends, rewritten atomically after every trial.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

from raysearch.data.discover import DataError
from raysearch.leaderboard import LeaderboardCallback, records_from_experiment, write_results
from raysearch.space import SearchSpace, SpaceError, load_space
from raysearch.storage import exists, is_uri, join, normalize

DEFAULT_STORAGE = "~/ray_results/raysearch"
TRIAL_DRIVER_MEMORY = 256 * 1024**2  # bytes reserved for each trial's driver function
WORKER_GROUP_START_TIMEOUT_S = 900  # a GPU node may take minutes to boot
HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray's marker resource of the head node


def run_trial(config: dict, space: SearchSpace, shards: str, storage: str, datasets: dict) -> None:
    """One Tune trial: train the sampled configuration with Ray Train."""
    import dataclasses

    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysearch.train import build_trainer, model_config_for

    # Ray Train gives up on a worker group that cannot start within 60 s; a trial waiting for
    # a GPU node to boot, or for a CPU after a node was lost, needs longer. Train propagates
    # this variable from the process that builds the trainer to its controller.
    os.environ.setdefault(
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(WORKER_GROUP_START_TIMEOUT_S)
    )
    repeat = int(config.get("__trial_index__", 0))
    model_config, train_config = space.configs_for(config, repeat)
    sized = model_config_for(shards)
    model_config = dataclasses.replace(
        model_config,
        input_shape=sized.input_shape,
        n_classes=sized.n_classes,
        input_mean=sized.input_mean,
        input_std=sized.input_std,
    )
    trial_id = ray.tune.get_context().get_trial_id()
    trainer = build_trainer(
        shards,
        model_config,
        train_config,
        name=f"{space.name}-{trial_id}",
        storage_path=join(storage, space.name, "train_runs"),
        callbacks=[TuneReportCallback()],
        datasets=datasets,
    )
    trainer.fit()


def concurrency_for(space: SearchSpace, resources: dict) -> int:
    """How many trials fit on the cluster at once (at least 1)."""
    if space.concurrency:
        return space.concurrency
    workers = space.resources.workers
    gpus = resources.get("GPU", 0)
    if gpus:
        fit = math.floor(gpus / (workers * space.resources.gpu) + 1e-9)
    else:
        fit = math.floor(resources.get("CPU", 1) / (workers * space.resources.cpu) + 1e-9)
    return max(1, fit)


def build_searcher(space: SearchSpace):
    """OptunaSearch with the space's sampler (seeded), wrapped in a Repeater for repeats."""
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    distributions = {p.name: p.optuna_distribution() for p in space.params}
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=space.seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=space.seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=space.seed),
        "grid": lambda: optuna.samplers.GridSampler(
            {p.name: p.grid_values() for p in space.params}, seed=space.seed
        ),
    }
    # a searcher built with its space must be told metric and mode itself
    searcher = OptunaSearch(
        space=distributions,
        metric=space.metric,
        mode=space.mode,
        sampler=samplers[space.sampler](),
        points_to_evaluate=[dict(p) for p in space.initial_points] or None,
    )
    if space.repeats > 1:
        searcher = Repeater(searcher, repeat=space.repeats, set_index=True)
    return searcher


def build_scheduler(space: SearchSpace):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if space.scheduler.type == "asha":
        epochs = int(space.train.get("epochs", 30))
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=epochs,
            # a short run (--epochs below the grace period) simply has no rung to stop at
            grace_period=min(space.scheduler.grace_period, epochs),
            reduction_factor=space.scheduler.reduction_factor,
        )
    return FIFOScheduler()


def run_search(
    space: SearchSpace,
    shards: str,
    storage: str,
    results_dir: str,
    resume: bool = False,
    verbose: int = 1,
):
    """Run (or resume) the search; returns Tune's ResultGrid. Writes ``results_dir``."""
    import ray
    from ray import tune

    from raysearch.train import split_datasets

    experiment = join(storage, space.name)
    # one read of the shards into the object store, shared by every trial
    datasets = split_datasets(shards)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, space=space, shards=shards, storage=storage, datasets=datasets
        ),
        # The trial driver only waits on its trainer: no CPU (the trainer's workers hold the
        # CPUs and GPUs). It runs on the head node, and Ray Train pins each run's controller
        # to the driver's node: losing a worker node then loses workers, never the
        # bookkeeping that frees their resources and lets Tune retry the trial.
        {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY, HEAD_NODE_RESOURCE: 0.001},
    )
    callback = LeaderboardCallback(space, results_dir, experiment, shards)
    if resume:
        if not tune.Tuner.can_restore(experiment):
            raise SpaceError(f"{experiment}: no experiment to resume here")
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    else:
        if exists(join(experiment, "tuner.pkl")):
            raise SpaceError(
                f"{experiment}: an experiment of this name exists; pass --resume "
                f"to continue it, or --name to start another"
            )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=space.metric,
                mode=space.mode,
                search_alg=build_searcher(space),
                scheduler=build_scheduler(space),
                num_samples=space.total_runs,
                max_concurrent_trials=concurrency_for(space, ray.cluster_resources()),
            ),
            run_config=tune.RunConfig(
                name=space.name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=space.max_failures),
                callbacks=[callback],
                verbose=verbose,
            ),
        )
    results = tuner.fit()
    # the callback wrote the results as trials finished; once more from storage, so the
    # files hold every trial of a resumed experiment too
    write_results(space, records_from_experiment(experiment), results_dir, experiment, shards)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m raysearch.tune",
        description="Search SE-CNN hyperparameters with Ray Tune + Optuna from a YAML "
        "search-space file, then write results/leaderboard.csv, results/leaderboard.md and "
        "the report's tables. Without --shards, prepares the synthetic mini-GTZAN first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--space", required=True, help="search-space YAML (search_spaces/)")
    parser.add_argument(
        "--shards",
        default=None,
        help="shard folder from raysearch.prepare (path or s3:// URI); "
        "default: prepare / reuse the synthetic mini-GTZAN",
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
        "--storage",
        default=DEFAULT_STORAGE,
        help="where Tune keeps the experiment (path, shared mount or s3:// "
        "URI; on a multi-node cluster it must be shared)",
    )
    parser.add_argument("--name", default=None, help="experiment name (default: the space's)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted experiment of this name"
    )
    parser.add_argument(
        "--results",
        default="results",
        help="folder for leaderboard.csv, leaderboard.md, tables and plots",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)",
    )
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from raysearch.runtime import init_ray

    args = build_parser().parse_args(argv)
    started = time.time()
    # Save the experiment state at most a second after a trial ends (Tune's default is every
    # 10 s or more), so a driver killed right after a trial finished does not re-run it.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    try:
        space = load_space(args.space).with_overrides(args.trials, args.epochs, args.repeats)
        if args.name:
            space = space.renamed(args.name)
        init_ray(args.address, args.num_cpus)
        if args.shards:
            shards = normalize(args.shards)
        else:
            from raysearch.train import default_shards

            shards = default_shards()
        storage = normalize(args.storage)
        if not is_uri(storage):
            os.makedirs(storage, exist_ok=True)
        print(
            f"search '{space.name}': {space.trials} configuration(s) x {space.repeats} "
            f"repeat(s), sampler {space.sampler}, scheduler {space.scheduler.type}; "
            f"shards {shards}; storage {join(storage, space.name)}",
            flush=True,
        )
        run_search(space, shards, storage, args.results, resume=args.resume)
    except (SpaceError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"done in {time.time() - started:.0f} s; leaderboard: "
        f"{os.path.join(args.results, 'leaderboard.csv')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
