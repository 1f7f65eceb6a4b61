"""A real S3 endpoint on loopback: moto's server mode (``ThreadedMotoServer``), an HTTP server
that speaks the S3 REST API, as Ray's own storage tests use it. pyarrow, boto3 and botocore
find it through ``AWS_ENDPOINT_URL``; a process started with :attr:`S3Server.env` (Ray's
workers, a command run as a subprocess) reaches the same buckets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

BUCKET = "raysearch-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT

    @property
    def env(self) -> dict[str, str]:
        """The environment that points AWS clients at this server, with test credentials and
        nothing read from the machine's own AWS configuration."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def keys(self, bucket: str = BUCKET, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextlib.contextmanager
def s3_server(buckets: tuple[str, ...] = (BUCKET,)) -> Iterator[S3Server]:
    """A moto S3 server on a free loopback port holding the empty ``buckets``."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3Server(f"http://{host}:{port}")
        for bucket in buckets:
            s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        server.stop()


@contextlib.contextmanager
def s3_and_ray() -> Iterator[tuple[S3Server, object]]:
    """The S3 server, its environment in this process (and so in the commands it starts and
    in Ray's workers), and a local Ray started after it; all gone at the end, the environment
    restored. A Ray started before, without the environment, cannot reach S3: it is stopped."""
    import os

    import ray

    ray.shutdown()
    with s3_server() as s3:
        saved = {name: os.environ.get(name) for name in s3.env}
        os.environ.update(s3.env)
        ray.init(num_cpus=2, log_to_driver=False)
        try:
            yield s3, ray
        finally:
            ray.shutdown()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
