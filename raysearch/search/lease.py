"""One driver per experiment: a lease in the experiment's own storage.

Tune has no lock on an experiment, and the Optuna journal of one in a bucket is a copy that
the last writer wins. Two drivers on one experiment (two machines with the same ``--storage``
and ``--resume``, or a second ``tune`` while the first runs) would each run trials and
overwrite the other's study. So a driver takes ``EXPERIMENT/raysearch.lease`` before it opens
anything of the experiment, renews it every :data:`RENEW_S` while it lives and gives it back at
its end. Another driver is refused in one line naming the holder (host, pid, since when). A
lease whose holder stopped renewing for :data:`TTL_S` is taken over; so is one whose holder is
a process of this machine that no longer runs (a driver killed with SIGKILL), at once.

Where the lease lives:
- a path (local disk or a shared mount): a file created with ``O_EXCL``; replaced, to renew or
  take it over, under an ``flock`` of its lock file, after checking it is still the one read;
- ``s3://``: an object written with S3's conditional writes, ``If-None-Match: *`` to take a
  free lease and ``If-Match: <ETag>`` to renew or take over the one read (S3 and moto honour
  both), through boto3;
- other filesystems: no lease, said in one line.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from raysearch.errors import UserError
from raysearch.storage import is_uri, join

LEASE_FILE = "raysearch.lease"
TTL_S = float(os.environ.get("RAYSEARCH_LEASE_TTL_S", 60))  # unrenewed this long: taken over
RENEW_S = TTL_S / 6


class ExperimentHeld(UserError):
    """Another driver holds the experiment's lease."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as written in it."""

    host: str
    pid: int
    since: float  # when it took the lease
    renewed: float  # when it last renewed it
    token: str  # this holding's own id (a driver that takes the lease again gets a new one)
    process_started: float  # the process's start, so that a reused pid is not taken for it

    @classmethod
    def me(cls, since: float | None = None) -> Holder:
        import psutil

        now = time.time()
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            since=now if since is None else since,
            renewed=now,
            token=uuid.uuid4().hex,
            process_started=psutil.Process().create_time(),
        )

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder | None:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None  # unreadable (a torn write): treated as free

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.since))
        return (
            f"host {self.host}, pid {self.pid}, since {since} "
            f"(renewed {max(0.0, now - self.renewed):.0f} s ago)"
        )

    def gone(self, now: float | None = None) -> bool:
        """Whether the lease may be taken over: unrenewed for TTL_S, or its process, on this
        machine, no longer runs."""
        now = time.time() if now is None else now
        if now - self.renewed > TTL_S:
            return True
        if self.host != socket.gethostname():
            return False
        import psutil

        try:
            return abs(psutil.Process(self.pid).create_time() - self.process_started) > 1.0
        except psutil.NoSuchProcess:
            return True


class _FileStore:
    """The lease as a file: create with O_EXCL, compare-and-replace under an flock."""

    def __init__(self, location: str) -> None:
        self.path = location
        self.lock = location + ".lock"

    def create(self, data: bytes) -> str | None:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return data.hex()

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, data.hex()

    def replace(self, data: bytes, version: str) -> str | None:
        import fcntl

        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = self.read()
            if now is None or now[1] != version:
                return None
            temporary = f"{self.path}.{uuid.uuid4().hex}"
            with open(temporary, "wb") as f:
                f.write(data)
            os.replace(temporary, self.path)
            return data.hex()

    def delete(self, version: str) -> None:
        import fcntl

        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = self.read()
            if now is not None and now[1] == version:
                os.remove(self.path)


class _S3Store:
    """The lease as an S3 object, written with conditional requests (the ETag is the version)."""

    def __init__(self, location: str) -> None:
        import boto3

        bucket, _, key = location[len("s3://") :].partition("/")
        self.bucket, self.key = bucket, key
        self.client = boto3.client("s3")

    def _failed(self, exc) -> bool:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in (409, 412) or exc.response.get("Error", {}).get("Code") in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
            "NoSuchKey",
        )

    def create(self, data: bytes) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            if self._failed(exc):
                return None
            raise
        return answer["ETag"]

    def read(self) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return answer["Body"].read(), answer["ETag"]

    def replace(self, data: bytes, version: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=data, IfMatch=version
            )
        except ClientError as exc:
            if self._failed(exc):
                return None
            raise
        return answer["ETag"]

    def delete(self, version: str) -> None:
        found = self.read()
        if found is not None and found[1] == version:  # ours still: gone; else not ours
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


def store_for(experiment: str) -> _FileStore | _S3Store | None:
    """Where ``experiment``'s lease is kept (None: a filesystem without conditional writes)."""
    location = join(experiment, LEASE_FILE)
    if location.startswith("s3://"):
        return _S3Store(location)
    if is_uri(location):
        return None
    os.makedirs(experiment, exist_ok=True)
    return _FileStore(location)


class Lease:
    """This driver's lease on an experiment: :meth:`take` it, :meth:`release` it at the end."""

    def __init__(self, location: str, store, holder: Holder, version: str) -> None:
        self.location, self.store = location, store
        self.holder, self.version = holder, version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: Holder | None = None  # who took it while this driver held it

    @classmethod
    def take(cls, experiment: str, say: Callable[[str], None] = print) -> Lease | None:
        """The experiment's lease for this driver; :class:`ExperimentHeld` when another
        driver holds it; None (said) where the storage has no conditional writes."""
        store = store_for(experiment)
        if store is None:
            say(f"note: no lease on {experiment} (only paths and s3:// have one): run one "
                "driver on it at a time")  # fmt: skip
            return None
        me = Holder.me()
        version = store.create(me.encode())
        if version is None:
            found = store.read()
            held = Holder.decode(found[0]) if found else None
            if held is not None and not held.gone():
                raise ExperimentHeld(
                    f"{experiment}: another driver runs this experiment ({held.describe()}); "
                    f"wait for it to end, or stop it: its lease lapses {TTL_S:.0f} s after its "
                    "last renewal"
                )
            version = store.replace(me.encode(), found[1]) if found else store.create(me.encode())
            if version is None:  # another driver took it over first
                raise ExperimentHeld(f"{experiment}: another driver took this experiment just now")
            if held is not None:
                say(f"lease of {experiment} taken over from a driver that is gone "
                    f"({held.describe()})")  # fmt: skip
        lease = cls(join(experiment, LEASE_FILE), store, me, version)
        lease._thread = threading.Thread(target=lease._renew, name="raysearch-lease", daemon=True)
        lease._thread.start()
        return lease

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            renewed = Holder(**{**asdict(self.holder), "renewed": time.time()})
            try:
                version = self.store.replace(renewed.encode(), self.version)
            except Exception:  # a storage hiccup: try again at the next renewal
                continue
            if version is None:
                found = self.store.read()
                self.lost = (Holder.decode(found[0]) if found else None) or self.holder
                self._on_lost()
                return
            self.holder, self.version = renewed, version

    def _on_lost(self) -> None:
        """Another driver took the lease (this one looked gone: renewals failed for TTL_S):
        stop as Ctrl+C does, so that the state is saved and nothing is run twice."""
        import signal

        print(
            f"lease of {self.location} lost to another driver ({self.lost.describe()}): "
            "stopping this one",
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGINT)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lost is None:
            try:
                self.store.delete(self.version)
            except Exception:  # it lapses by itself
                pass
