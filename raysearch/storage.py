"""Local paths and filesystem URIs (``s3://``, ``gs://``, ``file://``), one way.

Every place raysearch reads or writes data (audio, shards, manifests, Tune storage) goes through
:func:`resolve`, so a path on a shared mount and a bucket URI work the same on every node:
nothing assumes the driver's disk is visible to the workers.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in str(location)


def resolve(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path inside it for a local path or a URI."""
    location = str(location)
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


def location_of(filesystem: pafs.FileSystem | None, path: str) -> str:
    """A path inside ``filesystem`` as :func:`resolve` takes it back: the path itself on the
    local disk, else a URI (``s3://bucket/key``); what a Ray checkpoint's ``filesystem`` and
    ``path`` become in a leaderboard."""
    if filesystem is None or isinstance(filesystem, pafs.LocalFileSystem) or not path:
        return path
    return f"{filesystem.type_name}://{path}"


def normalize(location: str | os.PathLike) -> str:
    """An absolute local path, or the URI unchanged: safe to hand to another node."""
    location = str(location)
    return location if is_uri(location) else os.path.abspath(os.path.expanduser(location))


def join(base: str, *parts: str) -> str:
    """Join path parts with ``/`` (URIs and POSIX paths alike)."""
    return posixpath.join(base, *parts)


def exists(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    fs, path = resolve(location)
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(location: str) -> str:
    return read_bytes(location).decode("utf-8")


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can
    only be read by setting it, which would race with threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(location: str, data: bytes, durable: bool = True) -> None:
    """Write a file so that a reader sees the old content or the new one, never half of it.

    Local files: a temporary file (``.NAME.*.tmp``) in the same folder, fsync unless
    ``durable`` is False (files that can be made again), then ``os.replace``. Object stores
    (S3, GCS) make a single PUT visible atomically already.
    """
    if is_uri(location):
        fs, path = resolve(location)
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    path = os.path.abspath(os.path.expanduser(location))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 -> any new file's mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(location: str, text: str) -> None:
    write_bytes_atomic(location, text.encode("utf-8"))


def unique_sibling(location: str, tag: str) -> str:
    """A fresh name beside ``location``, for staging a folder before renaming it into place."""
    return f"{location.rstrip('/')}.{tag}-{uuid.uuid4().hex[:8]}"
