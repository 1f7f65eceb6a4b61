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

    ``fresh``: a new experiment, whose study starts empty whatever an earlier experiment of
    the same location left behind. Otherwise the copy at ``remote`` is fetched, unless the
    local file already holds all of it and more (a resume on the same machine). Unpickled (a
    restored searcher), it finds its local file again from ``remote`` alone.
    """

    def __init__(self, remote: str, fresh: bool = False) -> None:
        self.remote = remote
        local = local_copy(remote)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if fresh:
            open(local, "wb").close()
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


class MirroringOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` that copies its study's journal (a :class:`MirroredJournal`,
    when the study has one) to the experiment before Tune saves the searcher's state."""

    def __init__(self, *args, journal: MirroredJournal | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.journal = journal

    def save(self, checkpoint_path: str) -> None:
        if self.journal is not None:
            self.journal.push()
        super().save(checkpoint_path)
