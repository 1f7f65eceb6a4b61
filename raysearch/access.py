"""Whether a bucket location can be used, checked before any work starts.

A command given ``s3://`` (or ``gs://``) locations checks each one first, so that a bucket that
does not exist, missing credentials or a location the credentials cannot read or write is one
line naming the option and the URI, not a traceback from inside Ray minutes later. Local paths
are not checked here: the commands create or read them as before.

Credentials for ``s3://`` are looked up the way the AWS SDKs look them up (environment,
``~/.aws``, an instance profile), through botocore when it is installed (``pip install
raysearch[aws]``); pyarrow, which does the reading and writing, would otherwise send the
requests unsigned and fail later with "access denied".
"""

from __future__ import annotations

import uuid

import pyarrow.fs as pafs

from raysearch.errors import UserError
from raysearch.storage import is_uri, join, resolve

BUCKET_SCHEMES = ("s3", "gs", "gcs")
WRITE_CHECK = ".raysearch-write-check"  # written and deleted beside what a command will write


class AccessError(UserError):
    """A bucket location cannot be used: the message names the option, the URI and why."""


def check_location(location: str, option: str, write: bool = False) -> None:
    """Raise :class:`AccessError` unless the bucket of ``location`` exists, credentials are
    found and ``location`` can be read (and, with ``write``, written). Local paths pass."""
    if not is_uri(location):
        return
    where = f"{option} {location}"
    scheme = location.split("://", 1)[0].lower()
    if scheme == "s3" and "anonymous=true" not in location.lower():
        _check_aws_credentials(where)
    try:
        fs, path = resolve(location)
    except (OSError, ValueError) as exc:  # pyarrow: a bucket's region unknown, a bad URI
        raise AccessError(f"{where}: {_reason(exc)}") from exc
    try:
        if scheme in BUCKET_SCHEMES:
            bucket = path.split("/", 1)[0]
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise AccessError(f"{where}: bucket {bucket!r} does not exist")
        fs.get_file_info(path)
        if write:
            probe = join(path, f"{WRITE_CHECK}-{uuid.uuid4().hex[:8]}")
            with fs.open_output_stream(probe) as f:
                f.write(b"raysearch checks that it can write here\n")
            fs.delete_file(probe)
    except OSError as exc:
        raise AccessError(f"{where}: {_reason(exc)}") from exc


def _check_aws_credentials(where: str) -> None:
    try:
        import botocore.exceptions
        import botocore.session
    except ImportError:  # cannot tell; a request without credentials fails later
        return
    try:
        found = botocore.session.get_session().get_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        raise AccessError(f"{where}: AWS credentials: {exc}") from exc
    if found is None:
        raise AccessError(
            f"{where}: no AWS credentials found (environment variables, ~/.aws/credentials "
            "or ~/.aws/config, an instance profile); run `aws configure` or export "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: pyarrow's first line, named when it is a known case."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "NO_SUCH_BUCKET" in text or "bucket does not exist" in text.lower():
        return f"the bucket does not exist ({text})"
    if "ACCESS_DENIED" in text or "AccessDenied" in text or " 403" in text:
        return f"access denied: the credentials found may not use it ({text})"
    return text
