"""The Optuna study's journal of a search whose experiment is in a bucket.

A bucket takes no appends, so the journal is written in the driver's cache and copied into the
experiment (``STORAGE/NAME/optuna.journal``) whenever Tune saves the searcher's state, just
before Tune uploads that state: the copy in the bucket always holds every trial the saved
searcher knows. A resumed search (on this machine or another: ``ray down`` takes the head's
cache with it) fetches the copy again, so the study goes on where the experiment stopped, and
``optuna-dashboard`` / ``optuna.load_study`` read the copy after the cluster is gone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time

from optuna.storages.journal import JournalFileBackend
from ray.tune.search.optuna import OptunaSearch

from raysearch.storage import exists, read_bytes, write_bytes_atomic

log = logging.getLogger(__name__)


def local_copy(remote: str) -> str:
    """Where the driver keeps the journal of the experiment whose copy is ``remote``."""
    from raysearch.data.defaults import cache_dir

    key = hashlib.sha256(remote.encode()).hexdigest()[:12]
    name = os.path.basename(os.path.dirname(remote.rstrip("/"))) or "study"
    return str(cache_dir() / "optuna" / f"{name}-{key}.journal")


class MirroredJournal(JournalFileBackend):
    """A journal file in the driver's cache whose copy lives at ``remote`` (a URI).

    ``fresh``: a new experiment, whose study starts empty: a journal an earlier experiment of
    the same location left in the cache is moved aside (the search refuses a location whose
    bucket still holds an experiment or a journal before it gets here). Otherwise the copy at
    ``remote`` is fetched, unless the local file already holds all of it and more (a resume on
    the same machine). Unpickled (a restored searcher), it finds its local file again from
    ``remote`` alone.
    """

    def __init__(self, remote: str, fresh: bool = False) -> None:
        self.remote = remote
        local = local_copy(remote)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if fresh:  # an earlier experiment's cached study is set aside, never truncated
            if os.path.exists(local) and os.path.getsize(local):
                os.replace(local, f"{local}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
            open(local, "ab").close()
        else:
            _fetch(remote, local)
        super().__init__(local)
        self._pushed = -1  # the local size last copied to remote

    def __reduce__(self):
        return (MirroredJournal, (self.remote,))

    @property
    def path(self) -> str:
        return self._file_path

    def push(self) -> None:
        """Copy the journal to ``remote`` if it grew since the last copy. A failed copy is
        logged and tried again at the next save: the search goes on."""
        size = os.path.getsize(self._file_path)
        if size == self._pushed:
            return
        with open(self._file_path, "rb") as f:
            data = f.read()
        try:
            write_bytes_atomic(self.remote, data)
        except OSError as exc:
            log.warning("could not copy the Optuna journal to %s: %s", self.remote, exc)
            return
        self._pushed = len(data)


def _fetch(remote: str, local: str) -> None:
    """Make ``local`` hold the copy at ``remote`` (kept as it is when it already holds all of
    it: written here, and longer since the last copy)."""
    if not exists(remote):
        if not os.path.exists(local):
            open(local, "wb").close()
        return
    copy = read_bytes(remote)
    if os.path.exists(local):
        with open(local, "rb") as f:
            if f.read(len(copy)) == copy:
                return
    write_bytes_atomic(local, copy)


def mirror_of(storage) -> MirroredJournal | None:
    """The :class:`MirroredJournal` behind an Optuna ``JournalStorage``, if it has one."""
    backend = getattr(storage, "_backend", None)  # JournalStorage keeps its backend here
    return backend if isinstance(backend, MirroredJournal) else None


CLOSED_ATTR = "raysearch_closed"  # the reason a trial was closed in the study, not by Tune


class MirroringOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` that keeps its study consistent with Tune's saved state.

    - It copies the study's journal (a :class:`MirroredJournal`, when the study has one) to the
      experiment before Tune saves the searcher's state.
    - The study can be ahead of that state: the journal is written as trials are asked and
      told (locally at once; in a bucket at the save, before Tune's own upload, which may not
      finish), and a driver can be killed between the two. On restore, the trials the restored
      searcher does not know, still running in the study, are closed there (FAIL, with the
      reason in the system attribute :data:`CLOSED_ATTR`); an initial point such a trial held
      goes back in the queue. A trial the study has already finished is never told again (Tune
      runs it on from its checkpoint and reports it once more).
    """

    def __init__(self, *args, journal: MirroredJournal | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.journal = journal

    def save(self, checkpoint_path: str) -> None:
        if self.journal is not None:
            self.journal.push()
        super().save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        known = {trial._trial_id for trial in self._ot_trials.values()}
        closed = close_running(
            self._ot_study,
            "asked after the searcher state this search was resumed from (its driver stopped "
            "before Tune saved it): Tune never ran it",
            keep=known,
        )
        if closed:
            log.warning(
                "closed %d trial(s) of the study that the resumed search does not know", closed
            )

    def _finished_in_study(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return False
        return self._ot_study._storage.get_trial(trial._trial_id).state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._finished_in_study(trial_id):
            return  # told before the driver stopped: the study keeps what it was told
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if self._finished_in_study(trial_id):
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def close_running(study, reason: str, keep: set[int] = frozenset()) -> int:
    """Close as FAIL, with ``reason``, the study's running trials not in ``keep`` (storage trial
    ids); an initial point one of them held is queued again. How many were closed."""
    from optuna.trial import TrialState

    storage, closed = study._storage, 0
    for trial in storage.get_all_trials(study._study_id, deepcopy=False):
        if trial.state != TrialState.RUNNING or trial._trial_id in keep:
            continue
        storage.set_trial_system_attr(trial._trial_id, CLOSED_ATTR, reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        fixed = trial.system_attrs.get("fixed_params")
        if fixed:
            study.enqueue_trial(fixed, skip_if_exists=False)
        closed += 1
    return closed
