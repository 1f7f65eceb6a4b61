"""The tools a search reports to beside ``results/``: the Optuna study in a journal file that
``optuna-dashboard`` and ``optuna.load_study`` open, and MLflow through Ray's own integration.
TensorBoard needs nothing: Tune writes its event files into every trial folder
(``tensorboard --logdir STORAGE/NAME``)."""

from __future__ import annotations

import os

from raysearch.storage import is_uri

OPTUNA_JOURNAL = "optuna.journal"  # in the experiment folder


def optuna_storage(experiment: str):
    """The Optuna study's storage: a journal file in the experiment folder when that folder is
    a path (local disk or a shared mount), else in the driver's cache (``s3://`` takes no
    appends); returns ``(storage, journal path)``. A journal file works wherever the driver
    runs and survives a resume (the searcher reopens it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from raysearch.data.defaults import cache_dir

    if is_uri(experiment):
        path = str(cache_dir() / "optuna" / f"{os.path.basename(experiment)}.journal")
    else:
        path = os.path.join(experiment, OPTUNA_JOURNAL)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path)), path


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
