"""The tools a search reports to beside ``results/``: the Optuna study in a journal file that
``optuna-dashboard`` and ``optuna.load_study`` open, and MLflow through Ray's own integration.
TensorBoard needs nothing: Tune writes its event files into every trial folder
(``tensorboard --logdir STORAGE/NAME``)."""

from __future__ import annotations

import os

from raysearch.storage import is_uri, join

OPTUNA_JOURNAL = "optuna.journal"  # in the experiment folder


def optuna_storage(experiment: str, fresh: bool = False):
    """The Optuna study's storage: a journal file in the experiment folder when that folder is
    a path (local disk or a shared mount); in a bucket (``s3://`` takes no appends) a journal in
    the driver's cache mirrored into the experiment folder
    (:class:`~raysearch.search.journal.MirroredJournal`; ``fresh``: a new experiment's).
    Returns ``(storage, journal path, mirror or None)``. A journal file works wherever the
    driver runs and survives a resume (the searcher reopens it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if is_uri(experiment):
        from raysearch.search.journal import MirroredJournal

        mirror = MirroredJournal(join(experiment, OPTUNA_JOURNAL), fresh=fresh)
        return JournalStorage(mirror), mirror.path, mirror
    path = os.path.join(experiment, OPTUNA_JOURNAL)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path)), path, None


def mlflow_callback(uri: str, experiment_name: str):
    """Ray's ``MLflowLoggerCallback`` (a run per trial: its parameters, every epoch's metrics,
    its folder as artifacts) that also logs the trial's checkpoint (``checkpoint/model.pt``,
    the best-by-validation weights): Tune keeps checkpoints in the storage, not in the trial
    folder the integration uploads."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class CheckpointLoggingMLflow(MLflowLoggerCallback):
        def log_trial_end(self, trial, failed: bool = False):
            checkpoint = getattr(getattr(trial, "checkpoint", None), "path", None)
            if checkpoint and not is_uri(checkpoint) and os.path.isdir(checkpoint):
                from mlflow.tracking import MlflowClient

                client = MlflowClient(self.tracking_uri)
                client.log_artifacts(self._trial_runs[trial], checkpoint, "checkpoint")
            super().log_trial_end(trial, failed)

    return CheckpointLoggingMLflow(
        tracking_uri=uri, experiment_name=experiment_name, save_artifact=True
    )
