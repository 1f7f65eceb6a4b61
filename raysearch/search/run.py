"""The hyperparameter search: Ray Tune runs the trials, Optuna suggests them (TPE by default, or
GP, random, grid, seeded), ASHA stops weak trials early when the space asks for it.

A one-worker trial (the default) is a Tune function trainable that runs the training loop in
its own process and reports with ``ray.tune.report``: no worker group, no placement group, no
per-trial start-up beyond the process (which Tune reuses for the next eager trial, not for a
compiled one: :func:`reuses_actors`). A trial with
``workers > 1`` builds a ``TorchTrainer`` (DDP) and reports through ``TuneReportCallback``. The
shards are read once by the driver and shared through the object store; a network that a
finished trial already trained is not trained again (:mod:`~raysearch.search.finished_networks`),
and one that a running trial trains is held back until that trial ends
(:mod:`~raysearch.search.twins`). Whether trials ask for GPUs is decided before the first one
starts (:mod:`~raysearch.search.gpu_demand`).

Repeats (``repeats: k``) run each configuration k times with seeds 0..k-1 through Tune's
``Repeater``, which hands Optuna the mean. ``max_concurrent_trials`` is what the cluster fits
at its largest (or the space's ``concurrency``). A trial that fails is retried
(``FailureConfig``) from its last checkpoint. A resumed experiment (``Tuner.restore``) keeps
its finished trials, its searcher's state and its Optuna study.

Results: ``results/leaderboard.csv`` and friends, rewritten atomically after every trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os

from raysearch.model import ModelConfig
from raysearch.results.callback import LeaderboardCallback
from raysearch.results.records import records_from_experiment
from raysearch.results.write import finish_results, write_results
from raysearch.search import finished_networks
from raysearch.search.gpu_demand import HEAD_NODE_RESOURCE, GpuCapacity, GpuUnavailable
from raysearch.search.gpu_share import decide_gpu_share
from raysearch.search.space import SearchSpace, SpaceError
from raysearch.search.tracking import mlflow_callback, optuna_storage
from raysearch.storage import exists, is_uri, join
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
        return finished_networks.network_key(*self.configs(config), self.shards)


@dataclasses.dataclass(frozen=True)
class TrialInputs:
    """What every trial of a search shares, handed to :func:`run_trial` once."""

    network: TrialNetwork
    spectrogram: dict  # the shards' spectrogram settings (a checkpoint carries them)
    splits_ref: list  # [ObjectRef of the splits dict], read once by the driver
    use_gpu: bool
    worker_group: bool  # train through a Ray Train worker group even with one worker
    storage: str

    @property
    def experiment(self) -> str:
        return join(self.storage, self.network.space.name)


def run_trial(config: dict, inputs: TrialInputs) -> None:
    """One Tune trial: the sampled configuration, replayed when a finished trial trained the
    same network, else trained in this process (one worker) or by a Ray Train worker group
    (``workers > 1``, or ``worker_group``)."""
    import ray.tune

    from raysearch.training.runner import run_started_at

    started_at = run_started_at()  # before anything of the trial's own work
    model_config, train_config = inputs.network.configs(config)
    train_config = dataclasses.replace(train_config, use_gpu=inputs.use_gpu)
    trial_id = ray.tune.get_context().get_trial_id()
    record = finished_networks.Record(inputs.experiment, inputs.network(config), trial_id)
    if _replay_finished(record):
        return
    if train_config.workers > 1 or inputs.worker_group:
        _train_in_worker_group(model_config, train_config, inputs, record)
    else:
        _train_in_this_process(model_config, train_config, inputs, record, started_at)


def _replay(found: dict) -> int:
    """Report a twin's reports again (the same curve for Optuna and ASHA); how many."""
    import ray.tune

    for report in found["reports"]:
        ray.tune.report({**report, "reused_from": found["trial_id"]})
    return len(found["reports"])


def _replay_finished(record: finished_networks.Record) -> bool:
    """Whether another trial finished this network, whose reports were then replayed."""
    finished = finished_networks.lookup(record.experiment, record.key)
    if not finished or finished["trial_id"] == record.trial_id:
        return False
    _replay(finished)
    return True


def _train_in_worker_group(model_config, train_config, inputs: TrialInputs, record) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysearch.training.runner import build_trainer

    trainer = build_trainer(
        model_config,
        train_config,
        inputs.splits_ref[0],
        inputs.spectrogram,
        name=f"{inputs.network.space.name}-{record.trial_id}",
        storage_path=join(inputs.experiment, "train_runs"),
        callbacks=[TuneReportCallback()],
        record=record,
    )
    trainer.fit()


def _train_in_this_process(
    model_config, train_config, inputs: TrialInputs, record, started_at: float
) -> None:
    import ray
    import ray.tune

    from raysearch.search.mps import with_mps_state
    from raysearch.training.runner import keeping, train_in_process, tune_reporter

    replayed = 0
    stopped = finished_networks.lookup(record.experiment, record.key, partial=True)
    if stopped and stopped["trial_id"] != record.trial_id and ray.tune.get_checkpoint() is None:
        # a twin that ended early: its curve again, where the scheduler will likely stop this
        # trial too (nothing after that report runs); if not, train on from the start
        replayed = _replay(stopped)
    reporter = with_mps_state(tune_reporter) if inputs.use_gpu else tune_reporter
    report = keeping(record, reporter, replayed)
    splits = ray.get(inputs.splits_ref[0])
    train_in_process(
        model_config, train_config, splits, inputs.spectrogram, report, started_at=started_at
    )


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
        fit = math.floor(gpus / (workers * (space.resources.gpu_share or 1.0)) + 1e-9)
    else:
        fit = math.floor(cpus / (workers * space.resources.cpu) + 1e-9)
    return max(1, fit)


def build_searcher(space: SearchSpace, storage=None, network: TrialNetwork | None = None):
    """OptunaSearch with the space's sampler (seeded) and its study in ``storage`` (in memory
    when None; a journal mirrored into a bucket is kept up to date there), wrapped in a
    :class:`ResumableRepeater` for repeats and, given ``network`` (what a configuration
    trains), in :class:`DeferTwins`."""
    import optuna

    from raysearch.search.journal import MirroringOptunaSearch, mirror_of
    from raysearch.search.repeats import ResumableRepeater

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
    searcher = MirroringOptunaSearch(
        journal=mirror_of(storage),
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
        from raysearch.search.twins import DeferTwins

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
    (``train.compile``, which ``auto`` turns on for GPU trials): reused processes of compiled
    trials segfaulted on a GPU (results/gpu-h100-synthetic-2/); a new process per trial costs
    its imports and CUDA start-up instead.
    """
    if space.resources.workers > 1 or worker_group:
        return False
    config = TrainConfig(compile=space.train.get("compile", TrainConfig.compile))
    return config.compile_mode(on_gpu=bool(use_gpu)) == "off"


@contextlib.contextmanager
def holding_the_experiment(experiment: str, results_dir: str, resume: bool):
    """Every refusal first (:func:`check_experiment`, the results folder's), before anything
    of the experiment or the results folder is opened, emptied or removed; then this driver's
    lease on the experiment (:mod:`raysearch.search.lease`), held until the block ends."""
    from raysearch.results.write import check_results_dir
    from raysearch.search.lease import Lease

    check_experiment(experiment, resume)
    check_results_dir(results_dir, experiment)
    lease = Lease.take(experiment, say=lambda line: print(line, flush=True))
    try:
        yield
    finally:
        if lease is not None:
            lease.release()


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
    baseline: bool = True,
    ensemble: bool = True,
):
    """Run (or resume) the search; writes ``results_dir`` and returns its summary
    (:func:`raysearch.results.summary.summarize`).

    ``use_gpu``: None = GPUs when the cluster has or can launch them (and the space's
    ``resources.gpu`` is not 0). ``worker_group`` runs every trial through a Ray Train worker
    group even with one worker (what every trial did before; kept for the overhead benchmark).
    ``baseline``: at the end, the classical baseline of the shards beside the results
    (:mod:`raysearch.baseline`; its failure is one warning line, never the search's).
    ``ensemble``: at the end, the ensemble of the completed networks
    (:func:`raysearch.results.write.finish_results`, which also times the networks).

    It holds the experiment (:func:`holding_the_experiment`): every refusal first, then one
    driver per experiment.
    """
    with holding_the_experiment(join(storage, space.name), results_dir, resume):
        from raysearch.data.pipeline import shard_meta
        from raysearch.results.summary import summary_lines
        from raysearch.results.write import claim_results_dir
        from raysearch.runtime import set_environment

        set_environment()
        experiment = join(storage, space.name)
        meta = shard_meta(shards, warn=lambda line: print(line, flush=True))
        use_gpu, capacity = decide_device(space, use_gpu)
        if use_gpu:  # resources.gpu: auto → 1/K, K trials packed by memory
            space, why = decide_gpu_share(space, shards, capacity)
            if why:
                print(why, flush=True)
        claim_results_dir(results_dir, experiment)  # an old search's files go (refused before)
        inputs = share_inputs(space, shards, storage, use_gpu, worker_group)
        concurrency = concurrency_for(space, _cluster_cpus(), capacity.total if use_gpu else 0.0)
        print(
            f"trials on {'GPUs' if use_gpu else 'CPUs'}"
            + (f" ({capacity.describe()})" if capacity else "")
            + f"; up to {concurrency} at once",
            flush=True,
        )
        callbacks = [LeaderboardCallback(space, results_dir, experiment, meta)]
        if mlflow_uri:
            callbacks.append(mlflow_callback(mlflow_uri, space.name))
        if use_gpu:
            from raysearch.search.mps import MpsNotice

            callbacks.append(MpsNotice(say=lambda line: print(line, flush=True)))
        if not is_uri(experiment):
            os.makedirs(experiment, exist_ok=True)
        study_storage, journal, mirror = optuna_storage(experiment, fresh=not resume)
        copied = f" (copied to {mirror.remote} as the search goes)" if mirror else ""
        print(f"Optuna study '{space.name}': optuna-dashboard {journal}{copied}", flush=True)
        tuner = build_tuner(
            inputs, study_storage, callbacks, concurrency, resume, verbose, time_budget_s
        )
        compile_once(inputs, concurrency)
        tuner.fit()  # returns when every trial ended, or on Ctrl+C / SIGINT with the state saved
        # the callback wrote the results as trials finished; once more from storage, so the
        # files hold every trial of a resumed experiment too
        records = records_from_experiment(experiment)
        ended = all_ended(space, records)
        if ended:
            close_study(space.name, study_storage, mirror)
        # a stopped search exits at once (its caller may be about to kill it): the baseline then
        # comes from the cache only, and is computed at the end of the resumed search
        comparison = None
        if baseline:
            comparison = (
                search_baseline(shards, inputs) if ended else cached_baseline_or_none(shards)
            )
        write_results(space, records, results_dir, experiment, meta, baseline=comparison)
        say = lambda line: print(line, flush=True)  # noqa: E731
        finish_results(space, records, results_dir, experiment, meta, comparison, ensemble,
                       ended, say=say)  # fmt: skip
        with open(os.path.join(results_dir, "summary.json")) as f:
            summary = json.load(f)  # what write_results just summarised
        print(f"summary ({os.path.join(results_dir, 'summary.json')}):", flush=True)
        for line in summary_lines(summary, space):
            print(line, flush=True)
        return summary


def check_experiment(experiment: str, resume: bool) -> None:
    """The refusals about the experiment, made before anything of it is opened: a new search
    where one of this name exists, or where an earlier one left a study and no experiment; a
    resume where there is nothing to resume. Reads only."""
    from ray import tune

    from raysearch.search.tracking import OPTUNA_JOURNAL

    if resume:
        if not tune.Tuner.can_restore(experiment):
            raise SpaceError(f"{experiment}: no experiment to resume here")
        return
    if exists(join(experiment, "tuner.pkl")):
        raise SpaceError(
            f"{experiment}: an experiment of this name exists; pass --resume "
            f"to continue it, or --name to start another"
        )
    journal = join(experiment, OPTUNA_JOURNAL)
    if exists(journal):
        raise SpaceError(
            f"{journal}: an Optuna study without a Tune experiment (a search stopped before "
            "Tune first saved it: nothing to resume); remove it, or --name to start another"
        )


def compile_once(inputs: TrialInputs, concurrency: int) -> None:
    """Before the first trial, when trials compile: one compile per graph of the first wave,
    on the trials' node (:mod:`raysearch.search.warmup`), recorded as the start of this
    driver's run."""
    import time

    from raysearch.results.runs import record_warmup
    from raysearch.search.warmup import configurations_to_warm, first_wave, warm_up

    space = inputs.network.space
    if space.resources.workers > 1 or inputs.worker_group:
        return  # DDP-wrapped networks compile another graph, in their workers
    started = time.time()

    def configs(config: dict):
        model, train = inputs.network.configs(config)
        return model, dataclasses.replace(train, use_gpu=inputs.use_gpu)

    resources = trial_resources(space, inputs.use_gpu, inputs.worker_group)
    try:
        pairs = configurations_to_warm(configs, first_wave(space, concurrency))
        warm = warm_up(pairs, inputs.splits_ref, resources, say=lambda s: print(s, flush=True))
    except Exception as exc:  # an optimisation only: the trials then compile themselves
        print(f"warning: compile warm-up failed ({type(exc).__name__}: {exc}); each trial "
              "compiles for itself", flush=True)  # fmt: skip
        return
    if warm is not None:
        record_warmup(inputs.experiment, started, warm.to_dict())


def close_study(name: str, study_storage, mirror) -> None:
    """At the end of a search, the study's trials that no Tune trial ran (asked, then lost
    with a killed driver's unsaved state) closed as FAIL, and the bucket's copy updated: the
    study then holds each trial of the experiment once, finished."""
    import optuna

    from raysearch.search.journal import close_running

    study = optuna.load_study(study_name=name, storage=study_storage)
    if close_running(study, "no Tune trial ran it: the search ended without it"):
        print(f"Optuna study '{name}': closed the trials no Tune trial ran", flush=True)
    if mirror is not None:
        mirror.push()


def all_ended(space: SearchSpace, records) -> bool:
    """Whether every planned trial of the search ended (not one stopped by SIGINT)."""
    from raysearch.results.summary import ENDED

    return len(records) >= space.total_runs and all(r.status in ENDED for r in records)


def cached_baseline_or_none(shards: str):
    """The baseline cached beside the shards, or None (said in one line)."""
    from raysearch.baseline.shards import cached_baseline

    try:
        cached = cached_baseline(shards)
    except Exception:  # a comparison only: never the search's failure
        cached = None
    if cached is None:
        print("classical baseline: left for the end of the search (not finished)", flush=True)
    return cached


def search_baseline(shards: str, inputs: TrialInputs):
    """The classical baseline of the search's shards, from the splits it already holds (from
    the Parquet files again if the object store lost them)."""
    import ray

    from raysearch.baseline.shards import baseline_or_warning

    try:
        splits = ray.get(inputs.splits_ref[0])
    except ray.exceptions.RayError:
        splits = None
    return baseline_or_warning(shards, splits=splits, say=lambda line: print(line, flush=True))


def decide_device(space: SearchSpace, use_gpu: bool | None) -> tuple[bool, GpuCapacity | None]:
    """Whether trials ask for GPUs (and what the cluster has or can launch), decided once."""
    from raysearch.search.gpu_demand import gpu_capacity, resolve_use_gpu

    if space.resources.gpu == 0:
        if use_gpu:
            raise GpuUnavailable(f"--gpu: {space.source}: resources.gpu is 0 (CPU-only space)")
        return False, None
    capacity = gpu_capacity() if use_gpu is not False else None
    return (resolve_use_gpu(use_gpu, capacity=capacity) if capacity else False), capacity


def share_inputs(
    space: SearchSpace, shards: str, storage: str, use_gpu: bool, worker_group: bool
) -> TrialInputs:
    """One read of the shards into the object store, and what else every trial shares."""
    import ray

    from raysearch.training.data import load_splits, model_config_for, spectrogram_settings

    return TrialInputs(
        network=TrialNetwork(space, model_config_for(shards), shards),
        spectrogram=spectrogram_settings(shards),
        splits_ref=[ray.put(load_splits(shards))],  # a list: Tune does not resolve it
        use_gpu=use_gpu,
        worker_group=worker_group,
        storage=storage,
    )


def _cluster_cpus() -> float:
    import ray

    return ray.cluster_resources().get("CPU", 1)


def starts_over_without_its_checkpoint(function):
    """Tune's trainable class of ``function``, which starts a trial over (and says so in the
    trial's log) where Tune would fail it because the checkpoint it is restored from is gone
    from storage. A driver killed at the wrong moment leaves exactly that: Tune deletes a
    trial's older checkpoint (``num_to_keep=1``) as soon as it registers a newer one, while
    the experiment state it saved last, and resumes from, may still name the older one (in a
    bucket that state is uploaded in the background, and an upload is skipped while the
    previous one runs). Failing would end such a trial in error after its retries; starting
    over loses its epochs so far, not the trial."""
    from ray.tune.trainable.function_trainable import wrap_function

    base = wrap_function(function)

    class StartsOver(base):
        def restore(self, checkpoint_path):
            try:
                return super().restore(checkpoint_path)
            except ValueError as exc:
                if "does not exist on storage anymore" not in str(exc):
                    raise
                print(f"{exc}: this trial starts over", flush=True)
            self._iteration, self._time_total, self._restored = 0, 0.0, False

    StartsOver.__name__ = StartsOver.__qualname__ = function.__name__  # trials keep their names
    return StartsOver


def build_tuner(
    inputs: TrialInputs,
    study_storage,
    callbacks: list,
    concurrency: int,
    resume: bool,
    verbose: int,
    time_budget_s: float | None,
):
    """A new Tuner for the experiment, or the interrupted one restored (``resume``)."""
    from ray import tune

    space, experiment = inputs.network.space, inputs.experiment
    trainable = tune.with_resources(
        starts_over_without_its_checkpoint(tune.with_parameters(run_trial, inputs=inputs)),
        trial_resources(space, inputs.use_gpu, inputs.worker_group),
    )
    if resume:  # check_experiment made sure there is one
        return tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=build_searcher(space, study_storage, inputs.network),
            scheduler=build_scheduler(space),
            num_samples=space.total_runs,
            max_concurrent_trials=concurrency,
            reuse_actors=reuses_actors(space, inputs.use_gpu, inputs.worker_group),
            time_budget_s=time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=space.name,
            storage_path=inputs.storage,
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            callbacks=callbacks,
            verbose=verbose,
            progress_reporter=progress_reporter(space),
            # each trial keeps its latest checkpoint: model.pt holds its best weights
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


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
