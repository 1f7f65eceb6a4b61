"""Whether an AWS cluster config (``cluster/gpu.yaml``) can start, checked before ``ray up``.

``raysearch cluster check`` runs these in order and says each in one line: ok, or the problem
and its fix (a check that needs what an earlier one found missing is skipped):

* placeholders: values left to replace (the AMI, the profiles' ARNs); no AWS call.
* credentials: whose they are (``sts get-caller-identity``); without them the rest is skipped.
* profiles: each node type's instance profile exists, by its ARN, with a role in it.
* region: the config's region is the one written into the head role's policy when
  ``cluster/iam/create_roles.py`` made it, and the zones are in it. Changed afterwards, every
  worker launch fails with UnauthorizedOperation, seen only in the autoscaler's log.
* cluster name: ``cluster_name`` is the ``ray-cluster-name`` tag the head's policy lets it tag
  and terminate instances by.
* bucket: the bucket (``--bucket``, else the one the head role grants) exists, the caller's
  credentials can list it, and the roles grant S3 on it.
* ami: each ImageId exists in the region (AMI ids are per region).
* quota: the EC2 vCPU quota of the worker types' family (new accounts often have 0 for G
  instances) covers their ``max_workers`` x vCPUs.

The AWS calls are those of :data:`RIGHTS`. boto3 is needed (``pip install raysearch[aws]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from raysearch.errors import UserError

if TYPE_CHECKING:
    from boto3.session import Session

# every call the check makes (tests/test_cluster_check.py runs it holding these and no more)
RIGHTS = (
    "sts:GetCallerIdentity",
    "iam:GetInstanceProfile",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "s3:ListBucket",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
)
CLUSTER_TAG = "ray-cluster-name"  # Ray's TAG_RAY_CLUSTER_NAME, on every instance it launches
PLACEHOLDER = "REPLACE-WITH"
AMI_ID = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
PROFILE_ARN = re.compile(
    r"arn:aws[a-z-]*:iam::\d{12}:instance-profile/(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]+)"
)
ROLES_COMMAND = "python cluster/iam/create_roles.py --bucket BUCKET --write"
AMI_FIX = "set ImageId (gpu.yaml's &ami anchor) to a Deep Learning Base GPU AMI of {region}"
Status = Literal["ok", "FAIL", "skip"]


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was checked, ok / FAIL / skip, and what was found (the
    problem and its fix when it failed)."""

    check: str
    status: Status
    text: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status:<4}  {self.check:<12}  {self.text}"


@dataclass(frozen=True)
class Quota:
    """An EC2 vCPU quota of Service Quotas (service code ``ec2``)."""

    code: str
    name: str


# the vCPU quotas by instance family (the letters before the generation) and market
G_ON_DEMAND = Quota("L-DB2E81BA", "Running On-Demand G and VT instances")
QUOTAS = {
    ("g", "on-demand"): G_ON_DEMAND,
    ("vt", "on-demand"): G_ON_DEMAND,
    ("p", "on-demand"): Quota("L-417A185B", "Running On-Demand P instances"),
    ("g", "spot"): Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("vt", "spot"): Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("p", "spot"): Quota("L-7212CCBC", "All P Spot Instance Requests"),
}


class ClusterConfigError(UserError):
    """The cluster config cannot be checked: not readable, not YAML, not an AWS config."""


def load_config(path: Path) -> dict[str, Any]:
    """The launcher config at ``path``, with what the checks read present (an AWS provider
    with a region, node types, the head's type)."""
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ClusterConfigError(f"{path}: cannot be read ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ClusterConfigError(f"{path}: not YAML ({problem}{where})") from exc
    if not isinstance(config, dict):
        raise ClusterConfigError(f"{path}: not a Ray cluster config")
    provider = config.get("provider") or {}
    if provider.get("type") != "aws":
        raise ClusterConfigError(
            f"{path}: provider.type is {provider.get('type')!r}, not 'aws': nothing to check"
        )
    if not isinstance(provider.get("region"), str):
        raise ClusterConfigError(f"{path}: no provider.region")
    types = config.get("available_node_types")
    if not isinstance(types, dict) or config.get("head_node_type") not in types:
        raise ClusterConfigError(f"{path}: no available_node_types with the head_node_type")
    return config


def placeholders(config: dict[str, Any]) -> dict[str, list[str]]:
    """What still holds a placeholder: setting -> where (node types, or the key's path)."""
    found: dict[str, list[str]] = {}
    for name, node_type in config["available_node_types"].items():
        node_config = node_type.get("node_config") or {}
        image = node_config.get("ImageId")
        if not isinstance(image, str) or not AMI_ID.fullmatch(image):
            found.setdefault("ImageId", []).append(name)
        arn = (node_config.get("IamInstanceProfile") or {}).get("Arn")
        if not isinstance(arn, str) or not PROFILE_ARN.fullmatch(arn):
            found.setdefault("IamInstanceProfile.Arn", []).append(name)
    known = {
        f"available_node_types.{name}.node_config.{key}" for key in found for name in found[key]
    }
    for path in _paths_holding(config, PLACEHOLDER):
        if path not in known:
            found.setdefault(path, []).append("the file")
    return found


def check_cluster(
    config: dict[str, Any], session: Session, bucket: str | None = None
) -> Iterator[Finding]:
    """The checks, in order, as each one ends. ``session``: the caller's, in the config's
    region; ``bucket``: a name or ``s3://`` URI, else the one the head role grants S3 on."""
    region = config["provider"]["region"]
    yield _placeholder_finding(placeholders(config), region)
    try:
        caller = session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        yield Finding(
            "credentials",
            "FAIL",
            f"{_reason(exc)}: run `aws configure`, or export AWS_PROFILE (or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        )
        for check in ("profiles", "region", "cluster name", "bucket", "ami", "quota"):
            yield Finding(check, "skip", "no AWS credentials")
        return
    yield Finding("credentials", "ok", f"{caller['Arn']} (account {caller['Account']})")
    iam = session.client("iam")
    finding, head_role = _profiles(config, iam)
    yield finding
    try:
        statements = _inline_statements(iam, head_role) if head_role else None
    except ClientError as exc:
        unread = f"the head role {head_role}'s policies cannot be read: {_reason(exc)}"
        yield Finding("region", "FAIL", unread)
        yield Finding("cluster name", "FAIL", unread)
        statements = None
    else:
        yield _region(config, head_role, statements)
        yield _cluster_name(config, head_role, statements)
    ec2 = session.client("ec2")
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("bucket", lambda: _bucket(session.client("s3"), bucket, head_role, statements, region)),
        ("ami", lambda: _images(config, ec2, region)),
        ("quota", lambda: _quota(config, ec2, session.client("service-quotas"), region)),
    ]
    for check, run in checks:
        try:
            yield run()
        except (BotoCoreError, ClientError) as exc:  # what the check did not foresee
            yield Finding(check, "FAIL", _reason(exc))


# -- the checks --------------------------------------------------------------------------------


def _placeholder_finding(found: dict[str, list[str]], region: str) -> Finding:
    if not found:
        return Finding("placeholders", "ok", "none left")
    fixes = {
        "ImageId": AMI_FIX.format(region=region) + " (the lookup is at the top of gpu.yaml)",
        "IamInstanceProfile.Arn": f"run {ROLES_COMMAND}",
    }
    problems = [
        f"{setting} of {', '.join(where)}: {fixes.get(setting, 'replace it')}"
        for setting, where in found.items()
    ]
    return Finding("placeholders", "FAIL", "; ".join(problems))


def _profiles(config: dict[str, Any], iam: Any) -> tuple[Finding, str | None]:
    """Each node type's instance profile, and the head's role (None when not found)."""
    head_type, head_role = config["head_node_type"], None
    problems, present = [], []
    for type_name, node_type in config["available_node_types"].items():
        arn = ((node_type.get("node_config") or {}).get("IamInstanceProfile") or {}).get("Arn")
        match = PROFILE_ARN.fullmatch(arn) if isinstance(arn, str) else None
        if match is None:
            continue  # the placeholders line names it
        try:
            profile = iam.get_instance_profile(InstanceProfileName=match["name"])
        except ClientError as exc:
            missing = _code(exc) == "NoSuchEntity"
            problems.append(f"{type_name}: {arn} {'does not exist' if missing else _reason(exc)}")
            continue
        profile = profile["InstanceProfile"]
        if profile["Arn"] != arn:
            problems.append(f"{type_name}: {arn} is not {profile['Arn']} (account or path)")
        elif not profile["Roles"]:
            problems.append(f"{type_name}: {arn} holds no role")
        else:
            present.append(match["name"])
            if type_name == head_type:
                head_role = profile["Roles"][0]["RoleName"]
    if problems:
        return Finding("profiles", "FAIL", f"{'; '.join(problems)}: run {ROLES_COMMAND}"), None
    if not present:
        return Finding("profiles", "skip", "the ARNs are placeholders"), None
    return Finding("profiles", "ok", f"{', '.join(present)} exist, each with its role"), head_role


def _region(
    config: dict[str, Any], head_role: str | None, statements: list[dict] | None
) -> Finding:
    provider = config["provider"]
    region = provider["region"]
    zones = [z.strip() for z in str(provider.get("availability_zone") or "").split(",")]
    elsewhere = [zone for zone in zones if zone and not zone.startswith(region)]
    if elsewhere:
        return Finding(
            "region",
            "FAIL",
            f"availability_zone {', '.join(elsewhere)} not in provider.region {region}: "
            f"give zones of {region} (e.g. {region}a)",
        )
    if statements is None:
        return Finding("region", "skip", "the head's role was not found (see profiles)")
    granted = _condition_values(statements, "aws:RequestedRegion")
    rerun = f"run {ROLES_COMMAND} again after a region change"
    if not granted:
        return Finding(
            "region", "FAIL", f"the head role {head_role}'s policy names no region: {rerun}"
        )
    if region not in granted:
        return Finding(
            "region",
            "FAIL",
            f"provider.region is {region}, the head role {head_role}'s policy allows "
            f"{', '.join(sorted(granted))}: every worker launch would fail with "
            f"UnauthorizedOperation (only in the autoscaler's log); {rerun}",
        )
    return Finding("region", "ok", f"{region}, as in the head role {head_role}'s policy")


def _cluster_name(
    config: dict[str, Any], head_role: str | None, statements: list[dict] | None
) -> Finding:
    name = config.get("cluster_name")
    if statements is None:
        return Finding("cluster name", "skip", "the head's role was not found (see profiles)")
    granted = _condition_values(statements, f"ec2:ResourceTag/{CLUSTER_TAG}")
    if name not in granted:
        allowed = ", ".join(sorted(granted)) or "none"
        return Finding(
            "cluster name",
            "FAIL",
            f"cluster_name is {name!r}, the head role {head_role}'s policy tags and terminates "
            f"instances of {allowed}: the head could not stop its workers; run "
            f"{ROLES_COMMAND} again after renaming the cluster",
        )
    return Finding("cluster name", "ok", f"{name}, as in the head role {head_role}'s policy")


def _bucket(
    s3: Any,
    given: str | None,
    head_role: str | None,
    statements: list[dict] | None,
    region: str,
) -> Finding:
    granted = sorted(_buckets(statements or []))
    if given:
        name = given.removeprefix("s3://").split("/", 1)[0]
    elif len(granted) == 1:
        name = granted[0]
    else:
        return Finding("bucket", "skip", "no bucket known: give --bucket BUCKET")
    if statements is not None and name not in granted:
        return Finding(
            "bucket",
            "FAIL",
            f"the head role {head_role} grants S3 on {', '.join(granted) or 'no bucket'}, not "
            f"{name}: run python cluster/iam/create_roles.py --bucket {name} --write",
        )
    try:
        s3.list_objects_v2(Bucket=name, MaxKeys=1)
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            fix = f"create it: aws s3 mb s3://{name} --region {region}"
            return Finding("bucket", "FAIL", f"s3://{name} does not exist: {fix}")
        if _code(exc) in ("AccessDenied", "403"):
            return Finding(
                "bucket",
                "FAIL",
                f"s3://{name}: your credentials may not list it (another account's bucket, or "
                "no s3:ListBucket): use your own bucket, or credentials that may",
            )
        return Finding("bucket", "FAIL", f"s3://{name}: {_reason(exc)}")
    granted_by = f"; the head role {head_role} grants S3 on it" if statements is not None else ""
    return Finding("bucket", "ok", f"s3://{name} exists and your credentials list it{granted_by}")


def _images(config: dict[str, Any], ec2: Any, region: str) -> Finding:
    images = {
        (node_type.get("node_config") or {}).get("ImageId")
        for node_type in config["available_node_types"].values()
    }
    images = sorted(i for i in images if isinstance(i, str) and AMI_ID.fullmatch(i))
    if not images:
        return Finding("ami", "skip", "no AMI id (see placeholders)")
    found, problems = [], []
    for image in images:
        try:
            described = ec2.describe_images(ImageIds=[image])["Images"]
        except ClientError as exc:
            if not _code(exc).startswith("InvalidAMIID"):
                problems.append(f"{image}: {_reason(exc)}")
                continue
            described = []
        if described:
            found.append(f"{image} ({described[0].get('Name', 'no name')})")
        else:
            problems.append(f"{image} does not exist in {region}")
    if problems:
        fix = AMI_FIX.format(region=region) + ": AMI ids are per region"
        return Finding("ami", "FAIL", f"{'; '.join(problems)}: {fix}")
    return Finding("ami", "ok", f"{', '.join(found)} in {region}")


def _quota(config: dict[str, Any], ec2: Any, quotas: Any, region: str) -> Finding:
    """The vCPU quota of each G/VT or P worker type's family and market, against the vCPUs of
    ``max_workers`` of them (summed over the worker types that share a quota)."""
    demand: dict[Quota, list[tuple[str, int]]] = {}  # quota -> (instance type, workers)
    for name, node_type in config["available_node_types"].items():
        if name == config["head_node_type"]:
            continue
        node_config = node_type.get("node_config") or {}
        instance_type = node_config.get("InstanceType")
        market = (node_config.get("InstanceMarketOptions") or {}).get("MarketType", "on-demand")
        quota = QUOTAS.get((_family(str(instance_type)), market))
        if quota is not None:
            demand.setdefault(quota, []).append((instance_type, _workers(config, node_type)))
    if not demand:
        return Finding("quota", "skip", "no G, VT or P worker type")
    types = sorted({instance_type for wanted in demand.values() for instance_type, _ in wanted})
    try:
        described = ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]
    except ClientError as exc:
        return Finding("quota", "FAIL", f"{', '.join(types)} in {region}: {_reason(exc)}")
    vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"] for t in described}
    problems, fine = [], []
    for quota, wanted in demand.items():
        need = sum(count * vcpus[instance_type] for instance_type, count in wanted)
        parts = " + ".join(f"{count} x {t} ({vcpus[t]} vCPUs)" for t, count in wanted)
        try:
            value = _quota_value(quotas, quota)
        except (BotoCoreError, ClientError) as exc:
            problems.append(f"{quota.name} ({quota.code}) cannot be read: {_reason(exc)}")
            continue
        if value < need:
            problems.append(
                f"{quota.name} is {value:g} vCPUs in {region}, max_workers {parts} need {need}: "
                "request an increase: aws service-quotas request-service-quota-increase "
                "--service-code ec2 "
                f"--quota-code {quota.code} --desired-value {need} --region {region}"
            )
        else:
            fine.append(f"{quota.name} {value:g} vCPUs >= {parts} = {need}")
    if problems:
        return Finding("quota", "FAIL", "; ".join(problems))
    return Finding("quota", "ok", "; ".join(fine))


# -- helpers -----------------------------------------------------------------------------------


def _paths_holding(node: Any, text: str, path: str = "") -> Iterator[str]:
    """The dotted paths of the string values that contain ``text``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths_holding(value, text, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths_holding(value, text, f"{path}[{i}]")
    elif isinstance(node, str) and text in node:
        yield path


def _inline_statements(iam: Any, role: str) -> list[dict]:
    """The statements of ``role``'s inline policies (create_roles.py writes one)."""
    statements: list[dict] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # URL-encoded JSON where botocore did not decode it
            document = json.loads(unquote(document))
        found = document.get("Statement", [])
        statements += [found] if isinstance(found, dict) else found
    return statements


def _condition_values(statements: list[dict], key: str) -> set[str]:
    """The values the Allow statements' StringEquals conditions give ``key`` (any case)."""
    values: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for operator, conditions in (statement.get("Condition") or {}).items():
            if operator != "StringEquals":
                continue
            for name, value in conditions.items():
                if name.lower() == key.lower():
                    values.update([value] if isinstance(value, str) else value)
    return values


def _buckets(statements: list[dict]) -> set[str]:
    """The buckets (not their objects) the Allow statements name as resources."""
    names = set()
    for statement in statements:
        resources = statement.get("Resource", [])
        for resource in [resources] if isinstance(resources, str) else resources:
            match = re.fullmatch(r"arn:aws[a-z-]*:s3:::([^/*]+)", resource)
            if statement.get("Effect") == "Allow" and match:
                names.add(match[1])
    return names


def _family(instance_type: str) -> str:
    """``g`` of ``g5.2xlarge`` and ``gr6.4xlarge``, ``vt`` of ``vt1.3xlarge``, ``p`` of
    ``p4d.24xlarge``: the letters before the generation, G's variants folded into ``g``."""
    letters = re.match(r"[a-z]*", instance_type)[0]
    return "g" if letters.startswith("g") else letters


def _workers(config: dict[str, Any], node_type: dict[str, Any]) -> int:
    """How many nodes of a worker type may run at once: its max_workers within the cluster's
    (Ray's default max_workers, aws/defaults.yaml, is 2)."""
    caps = [c for c in (config.get("max_workers"), node_type.get("max_workers")) if c is not None]
    return min(caps) if caps else 2


def _quota_value(quotas: Any, quota: Quota) -> float:
    """The applied value of an EC2 quota, else its default (an account that never changed it)."""
    try:
        found = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
    except ClientError as exc:
        if _code(exc) != "NoSuchResourceException":
            raise
        found = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
    return float(found["Quota"]["Value"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: BaseException) -> str:
    """An AWS error in one line: its code and message."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return f"{_code(exc)}: {message}".strip(": ") or str(exc)
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
