"""``python -m raysearch.tune --space search_spaces/ratio.yaml``: the hyperparameter search.

Ray Tune runs the trials; Optuna suggests them (TPE by default, or GP, random, grid, seeded);
ASHA stops weak trials early when the space asks for it. A one-worker trial (the default) is a
Tune function trainable that runs the training loop in its own process and reports with
``ray.tune.report``: no worker group, no placement group, no per-trial start-up beyond the
process (which Tune reuses for the next trial). A trial with ``workers > 1`` builds a
``TorchTrainer`` (DDP) and reports through ``TuneReportCallback``. The shards are read once by
the driver and shared through the object store. Whether trials ask for GPUs is decided before
the first one starts (:mod:`raysearch.cluster`): ``--gpu`` / ``--cpu``, else GPUs when the
cluster has them or its autoscaler can launch a node type with them.

Repeats (``repeats: k``) run each configuration k times with seeds 0..k-1 through Tune's
``Repeater``, which hands Optuna the mean. ``max_concurrent_trials`` is what the cluster fits
at its largest (or the space's ``concurrency``). A trial that fails is retried
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

from raysearch.cli import program  # noqa: E402
from raysearch.cluster import HEAD_NODE_RESOURCE, GpuUnavailable
from raysearch.data.discover import DataError
from raysearch.model import ModelConfig
from raysearch.profiles import PROFILES
from raysearch.results.callback import LeaderboardCallback
from raysearch.results.records import records_from_experiment
from raysearch.results.write import write_results
from raysearch.space import SearchSpace, SpaceError, load_space, packaged_spaces
from raysearch.storage import exists, is_uri, join, normalize
from raysearch.tracking import mlflow_callback, optuna_storage

DEFAULT_STORAGE = "~/ray_results/raysearch"
TRIAL_DRIVER_MEMORY = 256 * 1024**2  # bytes reserved by a worker-group trial's driver function


def run_trial(
    config: dict,
    space: SearchSpace,
    base_model: ModelConfig,
    spectrogram: dict,
    splits_ref: list,
    use_gpu: bool,
    worker_group: bool,
    storage: str,
    shards: str,
) -> None:
    """One Tune trial: the sampled configuration, trained in this process (one worker) or by
    a Ray Train worker group (``workers > 1``, or ``worker_group``)."""
    import dataclasses

    import ray
    import ray.tune

    from raysearch import networks
    from raysearch.training.runner import build_trainer, scalars, train_in_process

    repeat = int(config.get("__trial_index__", 0))
    model_config, train_config = space.configs_for(config, repeat)
    model_config = dataclasses.replace(
        model_config,
        input_shape=base_model.input_shape,
        n_classes=base_model.n_classes,
        input_mean=base_model.input_mean,
        input_std=base_model.input_std,
    )
    train_config = dataclasses.replace(train_config, use_gpu=use_gpu)
    experiment = join(storage, space.name)
    key = networks.network_key(model_config, train_config, shards)
    trial_id = ray.tune.get_context().get_trial_id()
    finished = networks.lookup(experiment, key)
    if finished and finished["trial_id"] != trial_id:
        for report in finished["reports"]:  # the same curve for Optuna and ASHA, no training
            ray.tune.report({**report, "reused_from": finished["trial_id"]})
        return
    if train_config.workers > 1 or worker_group:
        from ray.tune.integration.ray_train import TuneReportCallback

        trainer = build_trainer(
            model_config,
            train_config,
            splits_ref[0],
            spectrogram,
            name=f"{space.name}-{trial_id}",
            storage_path=join(storage, space.name, "train_runs"),
            callbacks=[TuneReportCallback()],
        )
        final = dict(trainer.fit().return_value or {})
    else:
        final = train_in_process(model_config, train_config, ray.get(splits_ref[0]), spectrogram)
    if "test_acc" in final:
        reports = [dict(h) for h in final["history"]]
        reports[-1] = scalars(final)
        networks.record(experiment, key, trial_id, reports)


def trial_resources(space: SearchSpace, use_gpu: bool, worker_group: bool) -> dict:
    """What one trial's actor reserves."""
    if space.resources.workers > 1 or worker_group:
        # The trial only waits on its trainer, whose workers hold the CPUs and GPUs. It runs on
        # the head node, and Ray Train pins each run's controller to the driver's node: losing
        # a worker node then loses workers, never the bookkeeping that lets Tune retry.
        return {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY, HEAD_NODE_RESOURCE: 0.001}
    resources = {"cpu": space.resources.cpu}
    if use_gpu:
        resources["gpu"] = space.resources.gpu
    return resources


def concurrency_for(space: SearchSpace, cpus: float, gpus: float = 0.0) -> int:
    """How many trials fit at once (at least 1): on ``gpus`` GPUs when trials use GPUs (pass the
    most the cluster can have, launchable ones included), else on ``cpus`` CPUs."""
    if space.concurrency:
        return space.concurrency
    workers = space.resources.workers
    if gpus:
        fit = math.floor(gpus / (workers * (space.resources.gpu or 1.0)) + 1e-9)
    else:
        fit = math.floor(cpus / (workers * space.resources.cpu) + 1e-9)
    return max(1, fit)


def build_searcher(space: SearchSpace, storage=None):
    """OptunaSearch with the space's sampler (seeded) and its study in ``storage`` (in memory
    when None), wrapped in a Repeater for repeats."""
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
        study_name=space.name,
        storage=storage,
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
    use_gpu: bool | None = None,
    worker_group: bool = False,
    time_budget_s: float | None = None,
    mlflow_uri: str | None = None,
):
    """Run (or resume) the search; returns Tune's ResultGrid. Writes ``results_dir``.

    ``use_gpu``: None = GPUs when the cluster has or can launch them (and the space's
    ``resources.gpu`` is not 0). ``worker_group`` runs every trial through a Ray Train worker
    group even with one worker (what every trial did before; kept for the overhead benchmark).
    """
    import ray
    from ray import tune

    from raysearch.cluster import gpu_capacity, resolve_use_gpu
    from raysearch.data.pipeline import read_manifest
    from raysearch.data.split import SEGMENT_SPLIT_WARNING
    from raysearch.training.data import load_splits, model_config_for, spectrogram_settings

    experiment = join(storage, space.name)
    if space.resources.gpu == 0:
        if use_gpu:
            raise GpuUnavailable(f"--gpu: {space.source}: resources.gpu is 0 (CPU-only space)")
        use_gpu = False
    capacity = gpu_capacity() if use_gpu is not False else None
    use_gpu = resolve_use_gpu(use_gpu, capacity=capacity) if capacity else False
    # one read of the shards into the object store, shared by every trial
    splits_ref = [ray.put(load_splits(shards))]
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            space=space,
            base_model=model_config_for(shards),
            spectrogram=spectrogram_settings(shards),
            splits_ref=splits_ref,
            use_gpu=use_gpu,
            worker_group=worker_group,
            storage=storage,
            shards=shards,
        ),
        trial_resources(space, use_gpu, worker_group),
    )
    cpus = ray.cluster_resources().get("CPU", 1)
    concurrency = concurrency_for(space, cpus, capacity.total if use_gpu else 0.0)
    print(
        f"trials on {'GPUs' if use_gpu else 'CPUs'}"
        + (f" ({capacity.describe()})" if capacity else "")
        + f"; up to {concurrency} at once",
        flush=True,
    )
    manifest = read_manifest(shards)
    meta = {
        "shards": shards,
        "features": manifest.get("features", "stft"),
        "split_level": manifest.get("split_level", "track"),
    }
    if meta["split_level"] == "segment":
        print(f"warning: {shards} is split by segment: {SEGMENT_SPLIT_WARNING}", flush=True)
    callbacks = [LeaderboardCallback(space, results_dir, experiment, meta)]
    if mlflow_uri:
        callbacks.append(mlflow_callback(mlflow_uri, space.name))
    if not is_uri(experiment):
        os.makedirs(experiment, exist_ok=True)
    study_storage, journal = optuna_storage(experiment)
    print(f"Optuna study '{space.name}': optuna-dashboard {journal}", flush=True)
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
                search_alg=build_searcher(space, study_storage),
                scheduler=build_scheduler(space),
                num_samples=space.total_runs,
                max_concurrent_trials=concurrency,
                # a finished trial's process (torch imported, CUDA context up) runs the next
                reuse_actors=True,
                time_budget_s=time_budget_s,
            ),
            run_config=tune.RunConfig(
                name=space.name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=space.max_failures),
                callbacks=callbacks,
                verbose=verbose,
                progress_reporter=progress_reporter(space),
                # each trial keeps its latest checkpoint: model.pt holds its best weights
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
    results = tuner.fit()
    # the callback wrote the results as trials finished; once more from storage, so the
    # files hold every trial of a resumed experiment too
    write_results(space, records_from_experiment(experiment), results_dir, experiment, meta)
    return results


def progress_reporter(space: SearchSpace):
    """Tune's live table: the searched parameters, the epoch, validation accuracy and speed."""
    from ray import tune

    # Ray 2.60's default output ignores a reporter and shows the first four reported numbers
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    return tune.CLIReporter(
        parameter_columns=space.param_names,
        metric_columns={
            "epoch": "epoch",
            "train_loss": "train loss",
            "val_acc": "val acc",
            space.metric: space.metric.replace("_", " "),
            "segments_per_s": "segments/s",
        },
        sort_by_metric=True,  # by TuneConfig's metric and mode
        max_report_frequency=30,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("tune"),
        description="Search SE-CNN hyperparameters with Ray Tune + Optuna from a YAML "
        "search-space file, then write results/leaderboard.csv, results/leaderboard.md and "
        "the report's tables. Without --shards, prepares the synthetic mini-GTZAN first.",
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
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)",
    )
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)"
    )
    device = parser.add_mutually_exclusive_group()
    device.add_argument(
        "--gpu",
        dest="use_gpu",
        action="store_true",
        default=None,
        help="every trial asks for the space's resources.gpu; an error if the cluster has no "
        "GPU and cannot launch one (default without --gpu/--cpu: GPUs when the cluster has "
        "or can launch them)",
    )
    device.add_argument("--cpu", dest="use_gpu", action="store_false", help="train on CPUs")
    return parser


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
        space = space.with_overrides(args.trials, args.epochs, args.repeats)
        return space.renamed(args.name) if args.name else space
    for flag in ("trials", "epochs", "repeats"):
        if getattr(args, flag) is not None:
            raise SpaceError(
                f"--{flag} cannot change on --resume: the experiment keeps the space it "
                "started with (start another with --name to change it)"
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


def main(argv: list[str] | None = None) -> int:
    from raysearch.runtime import init_ray

    args = build_parser().parse_args(argv)
    started = time.time()
    # Save the experiment state at most a second after a trial ends (Tune's default is every
    # 10 s or more), so a driver killed right after a trial finished does not re-run it.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    try:
        storage = normalize(args.storage)
        space = search_space_for(args, storage)
        if args.shards and args.profile:
            raise SpaceError("--profile sizes the synthetic default: give it without --shards")
        if args.shards:
            init_ray(args.address, args.num_cpus)
            shards = normalize(args.shards)
        else:
            from raysearch.train import default_shards

            # the synthetic set is generated before Ray starts (its process pool never forks
            # a process that holds Ray's connections), then prepared on Ray
            profile = PROFILES[args.profile] if args.profile else None
            shards = default_shards(
                args.address, args.num_cpus, profile.prepare_args if profile else ()
            )
        if not is_uri(storage):
            os.makedirs(storage, exist_ok=True)
        print(
            f"search '{space.name}': {space.trials} configuration(s) x {space.repeats} "
            f"seed(s), sampler {space.sampler}, scheduler {space.scheduler.type}; "
            f"shards {shards}; storage {join(storage, space.name)}",
            flush=True,
        )
        run_search(
            space,
            shards,
            storage,
            args.results,
            resume=args.resume,
            use_gpu=args.use_gpu,
            mlflow_uri=args.mlflow,
        )
    except (SpaceError, DataError, GpuUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"done in {time.time() - started:.0f} s; leaderboard: "
        f"{os.path.join(args.results, 'leaderboard.csv')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
