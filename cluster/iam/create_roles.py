"""Create (or bring up to date) the IAM roles and instance profiles of ``cluster/gpu.yaml``.

    python cluster/iam/create_roles.py --bucket BUCKET [--write]

Two roles, each in an instance profile of the same name:

* ``raysearch-head`` (``head-policy.json``): what Ray's AWS autoscaler on the head calls, in the
  config's region only: list instances, launch workers (tagging them as it launches them), tag
  and terminate the instances Ray tagged ``ray-cluster-name: <cluster_name>``; ``iam:PassRole``
  on the worker role only (EC2 refuses ``RunInstances`` with a profile whose role the caller may
  not pass: ray-project/ray#3190); S3 on BUCKET.
* ``raysearch-worker`` (``worker-policy.json``): S3 on BUCKET (trials write their checkpoints
  and results to the Tune storage themselves).

The config's region and ``cluster_name`` are written into the head's policy: after changing
either, run this again (``raysearch cluster check`` says when they differ). Running it again
changes nothing that is already right (policies are rewritten, a role already in its profile
stays), so it is also how to move the cluster to another bucket. The ARN partition (``aws``,
``aws-cn``, ``aws-us-gov``) is the caller's. It prints the two instance-profile ARNs;
``--write`` puts them into the config (the lines marked ``# iam: head`` and ``# iam:
worker``). It needs boto3 and credentials holding :data:`RIGHTS`. It lives beside gpu.yaml,
not in the package: it is run once per AWS account, from the repository, like ``ray up``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE.parent / "gpu.yaml"
# every call this script makes, first run and re-run (tests/test_iam.py runs it holding these
# and nothing else)
RIGHTS = (
    "sts:GetCallerIdentity",
    "iam:GetRole",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:GetInstanceProfile",
    "iam:CreateInstanceProfile",
    "iam:AddRoleToInstanceProfile",
)
# the config's lines that name the profiles: `Arn: <arn>  # iam: head` (or worker)
ARN_LINE = re.compile(
    r"^(?P<lead>\s*Arn:\s*)(?P<arn>\S+)(?P<tail>\s*#\s*iam:\s*(?P<kind>head|worker)\b.*)$"
)


class SetupError(Exception):
    """What stops the setup, in one line (AWS refused, no credentials, a bad option)."""


@dataclass(frozen=True)
class Roles:
    """The two roles (and their instance profiles, of the same names) of one cluster: its
    bucket, region, ``cluster_name``, and the caller's account and ARN partition."""

    bucket: str
    region: str
    cluster: str
    account: str
    partition: str
    prefix: str = "raysearch"

    @property
    def head(self) -> str:
        return f"{self.prefix}-head"

    @property
    def worker(self) -> str:
        return f"{self.prefix}-worker"

    def policy(self, name: str) -> dict:
        """A policy file of this folder with the bucket, region, cluster name, account, partition
        and worker role in."""
        text = (HERE / f"{name}-policy.json").read_text()
        values = {
            "BUCKET": self.bucket,
            "REGION": self.region,
            "CLUSTER": self.cluster,
            "ACCOUNT": self.account,
            "PARTITION": self.partition,
            "WORKER_ROLE": self.worker,
        }
        return json.loads(Template(text).substitute(values))


def bucket_name(text: str) -> str:
    """``BUCKET`` from ``BUCKET`` or ``s3://BUCKET[/...]``."""
    name = text.removeprefix("s3://").split("/", 1)[0]
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
        raise SetupError(f"--bucket {text!r}: not an S3 bucket name")
    return name


def create(roles: Roles, iam) -> dict[str, str]:
    """Create or update both roles, their policies and profiles; returns kind → profile ARN."""
    trust = (HERE / "trust-policy.json").read_text()
    arns = {}
    for kind, name in (("head", roles.head), ("worker", roles.worker)):
        if _exists(iam.get_role, RoleName=name):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        else:
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=trust,
                Description=f"raysearch cluster {kind} (cluster/iam)",
            )
        iam.put_role_policy(
            RoleName=name, PolicyName=name, PolicyDocument=json.dumps(roles.policy(kind))
        )
        if not _exists(iam.get_instance_profile, InstanceProfileName=name):
            iam.create_instance_profile(InstanceProfileName=name)
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        if name not in [role["RoleName"] for role in profile["Roles"]]:
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        arns[kind] = profile["Arn"]
    return arns


def _exists(get, **name) -> bool:
    try:
        get(**name)
    except get.__self__.exceptions.NoSuchEntityException:
        return False
    return True


def write_arns(config: Path, arns: dict[str, str]) -> None:
    """Put the ARNs on the config's ``# iam: head`` / ``# iam: worker`` lines, nothing else."""
    lines, found = config.read_text().splitlines(keepends=True), set()
    for i, line in enumerate(lines):
        match = ARN_LINE.match(line.rstrip("\n"))
        if match:
            found.add(match["kind"])
            lines[i] = f"{match['lead']}{arns[match['kind']]}{match['tail']}\n"
    if found != {"head", "worker"}:
        raise SetupError(f"{config}: no `Arn: ...  # iam: head` and `# iam: worker` lines")
    config.write_text("".join(lines))


def read_config(config: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SetupError(f"{config}: cannot be read ({exc})") from exc
    if not isinstance(loaded, dict):
        raise SetupError(f"{config}: not a Ray cluster config")
    return loaded


def region_of(config: dict, path: Path) -> str:
    region = (config.get("provider") or {}).get("region")
    if not isinstance(region, str):
        raise SetupError(f"{path}: no provider.region; give --region")
    return region


def cluster_of(config: dict, path: Path) -> str:
    """``cluster_name``: what Ray tags every instance of the cluster with (``ray-cluster-name``)."""
    name = config.get("cluster_name")
    if not isinstance(name, str) or not name:
        raise SetupError(f"{path}: no cluster_name")
    return name


def partition_of(caller_arn: str) -> str:
    """``aws`` from ``arn:aws:iam::123456789012:user/me`` (``aws-cn``, ``aws-us-gov``, ...)."""
    return caller_arn.split(":")[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python cluster/iam/create_roles.py",
        description="Create or update the head's and the workers' IAM roles and instance "
        "profiles for one S3 bucket (policies in cluster/iam/), and print their ARNs.",
        epilog="Rights it needs: " + ", ".join(RIGHTS),
    )
    parser.add_argument(
        "--bucket", required=True, help="the S3 bucket of the shards and Tune storage"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="cluster config to read the region and cluster_name from and --write into "
        "(default: %(default)s)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: the config's)")
    parser.add_argument(
        "--prefix",
        default="raysearch",
        help="names: PREFIX-head and PREFIX-worker (default: %(default)s)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the two ARNs into --config (default: only print them)",
    )
    args = parser.parse_args(argv)
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        print("error: boto3 is needed: pip install boto3", file=sys.stderr)
        return 2
    try:
        bucket = bucket_name(args.bucket)
        config = read_config(args.config)
        region = args.region or region_of(config, args.config)
        session = boto3.session.Session(region_name=region)
        caller = session.client("sts").get_caller_identity()
        roles = Roles(
            bucket=bucket,
            region=region,
            cluster=cluster_of(config, args.config),
            account=caller["Account"],
            partition=partition_of(caller["Arn"]),
            prefix=args.prefix,
        )
        arns = create(roles, session.client("iam"))
        if args.write:
            write_arns(args.config, arns)
    except (SetupError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"head instance profile:   {arns['head']}")
    print(f"worker instance profile: {arns['worker']}")
    print(
        f"{args.config}: ARNs written"
        if args.write
        else "put them into the config's "
        "`# iam: head` / `# iam: worker` lines, or run again with --write"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
