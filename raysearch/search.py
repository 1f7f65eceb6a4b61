"""The hyperparameter search: Ray Tune runs the trials, Optuna suggests them (TPE by default, or
GP, random, grid, seeded), ASHA stops weak trials early when the space asks for it.

A one-worker trial (the default) is a Tune function trainable that runs the training loop in
its own process and reports with ``ray.tune.report``: no worker group, no placement group, no
per-trial start-up beyond the process (which Tune reuses for the next eager trial, not for a
compiled one: :func:`reuses_actors`). A trial with
``workers > 1`` builds a ``TorchTrainer`` (DDP) and reports through ``TuneReportCallback``. The
shards are read once by the driver and shared through the object store; a network that a
finished trial already trained is not trained again (:mod:`raysearch.networks`), and one that a
running trial trains is held back until that trial ends (:mod:`raysearch.twins`). Whether trials
ask for GPUs is decided before the first one starts (:mod:`raysearch.cluster`).

Repeats (``repeats: k``) run each configuration k times with seeds 0..k-1 through Tune's
``Repeater``, which hands Optuna the mean. ``max_concurrent_trials`` is what the cluster fits
at its largest (or the space's ``concurrency``). A trial that fails is retried
(``FailureConfig``) from its last checkpoint. A resumed experiment (``Tuner.restore``) keeps
its finished trials, its searcher's state and its Optuna study.

Results: ``results/leaderboard.csv`` and friends, rewritten atomically after every trial.
"""

from __future__ import annotations

import dataclasses
import math
import os

from raysearch.cluster import HEAD_NODE_RESOURCE, GpuUnavailable
from raysearch.model import ModelConfig
from raysearch.results.callback import LeaderboardCallback
from raysearch.results.records import records_from_experiment
from raysearch.results.write import write_results
from raysearch.space import SearchSpace, SpaceError
from raysearch.storage import exists, is_uri, join
from raysearch.tracking import mlflow_callback, optuna_storage
from raysearch.training.config import TrainConfig

DEFAULT_STORAGE = "~/ray_results/raysearch"
TRIAL_DRIVER_MEMORY = 256 * 1024**2  # bytes reserved by a worker-group trial's driver function


@dataclasses.dataclass(frozen=True)
class TrialNetwork:
    """What a sampled configuration trains: its model and training configs, sized for the
    shards, and the network key that says when two trials train the same network."""

    space: SearchSpace
    base_model: ModelConfig  # sized for the shards (input shape, classes, standardisation)
    shards: str

    def configs(self, config: dict):
        from raysearch.training.data import sized_as

        repeat = int(config.get("__trial_index__", 0))
        model_config, train_config = self.space.configs_for(config, repeat)
        return sized_as(model_config, self.base_model), train_config

    def __call__(self, config: dict) -> str:
        from raysearch import networks

        return networks.network_key(*self.configs(config), self.shards)


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
    import ray
    import ray.tune

    from raysearch import networks
    from raysearch.training.runner import build_trainer, keeping, train_in_process, tune_reporter

    network = TrialNetwork(space, base_model, shards)
    model_config, train_config = network.configs(config)
    train_config = dataclasses.replace(train_config, use_gpu=use_gpu)
    experiment = join(storage, space.name)
    key = network(config)
    trial_id = ray.tune.get_context().get_trial_id()
    record = networks.Record(experiment, key, trial_id)
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
            record=record,
        )
        trainer.fit()
        return

    replayed = 0
    stopped = networks.lookup_partial(experiment, key)
    if stopped and stopped["trial_id"] != trial_id and ray.tune.get_checkpoint() is None:
        # a twin that ended early: its curve again, where the scheduler will likely stop this
        # trial too (nothing after that report runs); if not, train on from the start
        for report in stopped["reports"]:
            ray.tune.report({**report, "reused_from": stopped["trial_id"]})
        replayed = len(stopped["reports"])
    report = keeping(record, tune_reporter, replayed)
    train_in_process(model_config, train_config, ray.get(splits_ref[0]), spectrogram, report)


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


def build_searcher(space: SearchSpace, storage=None, network: TrialNetwork | None = None):
    """OptunaSearch with the space's sampler (seeded) and its study in ``storage`` (in memory
    when None), wrapped in a :class:`ResumableRepeater` for repeats and, given ``network`` (what
    a configuration trains), in :class:`DeferTwins`."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from raysearch.repeats import ResumableRepeater

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
        searcher = ResumableRepeater(searcher, repeat=space.repeats, set_index=True)
    if network is not None:  # a repeat's seed is part of its network: twins share one
        from raysearch.twins import DeferTwins

        return DeferTwins(searcher, network, space.total_runs)
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


def reuses_actors(space: SearchSpace, use_gpu: bool, worker_group: bool) -> bool:
    """Whether a finished trial's process (torch imported, CUDA context up) runs the next one.

    Not a worker-group trial's: one that Tune stops is still inside ``trainer.fit()``, Tune
    cannot reset its actor, and the next trial on it fails. Not when trials compile
    (``train.compile``, which ``auto`` turns on for GPU trials): on an H100, 2 of about 20
    actor resets of compiled trials ended in a segfault of the trial's process, one inside
    Tune's ``reset_config`` (results/gpu-h100-synthetic-2/); a new process per trial costs
    its imports and CUDA start-up instead.
    """
    if space.resources.workers > 1 or worker_group:
        return False
    config = TrainConfig(compile=space.train.get("compile", TrainConfig.compile))
    return config.compile_mode(on_gpu=bool(use_gpu)) == "off"


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
    base_model = model_config_for(shards)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            space=space,
            base_model=base_model,
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
    # every trial checkpoint forces an experiment-state snapshot (CheckpointConfig(num_to_keep)
    # below), and Ray warns each time two come within 5 s: three lines per epoch of output.
    # Measured on a 50-trial search: 19 ms of the driver per snapshot, 1.4 % of its time
    # (docs/performance.md), so the warning is noise here; a user's own setting still wins
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
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
                search_alg=build_searcher(
                    space, study_storage, TrialNetwork(space, base_model, shards)
                ),
                scheduler=build_scheduler(space),
                num_samples=space.total_runs,
                max_concurrent_trials=concurrency,
                reuse_actors=reuses_actors(space, use_gpu, worker_group),
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
    """Tune's live table: the searched parameters, the epoch, validation accuracy and speed;
    ended trials sorted by the space's metric."""
    from ray import tune
    from ray.tune.experiment import Trial

    class Reporter(tune.CLIReporter):
        def report(self, trials, done, *sys_info):
            # Ray 2.60 sorts ended trials by the metric with None for a trial that ended before
            # its first report (a time budget does that) and fails on comparing it: sort only
            # while every ended trial has the metric (Ray switches this same flag itself)
            self._sort_by_metric = all(
                space.metric in trial.last_result
                for trial in trials
                if trial.status == Trial.TERMINATED
            )
            super().report(trials, done, *sys_info)

    # Ray 2.60's default output ignores a reporter and shows the first four reported numbers
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    return Reporter(
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
