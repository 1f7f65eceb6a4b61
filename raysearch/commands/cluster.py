"""``raysearch cluster check [CONFIG]`` (``python -m raysearch.cluster``): whether an AWS
cluster config can start, before ``ray up``: one line a check, exit status 1 if any failed.
The work is :mod:`raysearch.cluster_check`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raysearch.commands.options import fail, program
from raysearch.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("cluster"),
        description="Cluster configs on AWS (cluster/gpu.yaml).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="check an AWS cluster config before `ray up`",
        description="Check an AWS cluster config before `ray up`, with your AWS credentials: "
        "placeholders left in it, the instance profiles, the region and cluster name written "
        "into the head role's policy, the bucket, the AMI in the region, the vCPU quota of "
        "the GPU workers. One line a check (ok, or the problem and its fix); the exit status "
        "is 1 if any failed. It only reads (the rights it needs: cluster/README.md).",
    )
    check.add_argument(
        "config",
        nargs="?",
        default="cluster/gpu.yaml",
        help="the cluster config (default: %(default)s)",
    )
    check.add_argument(
        "--bucket",
        default=None,
        help="the S3 bucket the cluster will use (BUCKET or s3://BUCKET/...); default: the one "
        "the head role grants S3 on",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import boto3
    except ImportError:
        return fail("boto3 is needed to check an AWS cluster: pip install 'raysearch[aws]'")
    from raysearch.cluster_check import check_cluster, load_config

    try:
        config = load_config(Path(args.config))
    except UserError as exc:
        return fail(str(exc))
    session = boto3.session.Session(region_name=config["provider"]["region"])
    failed = 0
    for finding in check_cluster(config, session, args.bucket):
        print(finding.line(), flush=True)
        failed += finding.failed
    if failed:
        print(f"{args.config}: {failed} check(s) failed: fix them before `ray up`")
        return 1
    print(
        f"{args.config}: ready: ray up {args.config}, then ray monitor {args.config} shows launches"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
