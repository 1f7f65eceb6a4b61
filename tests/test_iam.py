"""``cluster/iam/``: the roles and instance profiles ``cluster/gpu.yaml`` names, created in
moto's IAM by ``create_roles.py``; then Ray's own AWS node provider launches the head and a GPU
worker from gpu.yaml's own ``node_config``s against moto's EC2 (botocore checks every request's
shape, moto that each instance profile exists), and each instance carries its profile. The
policies are checked as documents: the head may pass the worker role and nothing wider."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
IAM_DIR = REPO_ROOT / "cluster" / "iam"
GPU_YAML = REPO_ROOT / "cluster" / "gpu.yaml"
REGION = "us-west-2"
BUCKET = "raysearch-bucket"
ACCOUNT = "123456789012"  # moto's default account


def _load_create_roles():
    spec = importlib.util.spec_from_file_location("create_roles", IAM_DIR / "create_roles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


create_roles = _load_create_roles()


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """moto's AWS in this process (EC2, IAM, STS), test credentials, a HOME of its own (Ray's
    bootstrap writes the cluster's SSH key there) and Ray's boto3 caches emptied."""
    from moto import mock_aws
    from ray.autoscaler._private.aws.utils import client_cache, resource_cache

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    resource_cache.cache_clear()
    client_cache.cache_clear()
    with mock_aws():
        yield
    resource_cache.cache_clear()
    client_cache.cache_clear()


def _create(config: Path, capsys) -> dict[str, str]:
    argv = ["--bucket", f"s3://{BUCKET}/raysearch", "--config", str(config), "--write"]
    assert create_roles.main(argv) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    return {line.split()[0]: line.split()[-1] for line in lines if "instance profile:" in line}


def _launch(config: dict, node_type: str, kind: str) -> str:
    """Ray's AWSNodeProvider creates one node of ``node_type``; returns its instance id."""
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider
    from ray.autoscaler.tags import TAG_RAY_NODE_KIND, TAG_RAY_USER_NODE_TYPE

    provider = AWSNodeProvider(config["provider"], config["cluster_name"])
    node_config = config["available_node_types"][node_type]["node_config"]
    created = provider.create_node(
        node_config, {TAG_RAY_NODE_KIND: kind, TAG_RAY_USER_NODE_TYPE: node_type}, 1
    )
    (instance_id,) = created
    return instance_id


@pytest.mark.slow  # no Ray runtime, but Ray's bootstrap and two launches take seconds
def test_ray_launches_the_head_and_a_gpu_worker_with_their_profiles(aws, tmp_path, capsys):
    import boto3
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.util import prepare_config

    config_file = tmp_path / "gpu.yaml"
    shutil.copy(GPU_YAML, config_file)
    arns = _create(config_file, capsys)
    assert arns == {
        "head": f"arn:aws:iam::{ACCOUNT}:instance-profile/raysearch-head",
        "worker": f"arn:aws:iam::{ACCOUNT}:instance-profile/raysearch-worker",
    }
    assert _create(config_file, capsys) == arns  # again: nothing new, nothing broken

    iam = boto3.client("iam")
    for kind in ("head", "worker"):
        name = f"raysearch-{kind}"
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        assert [role["RoleName"] for role in profile["Roles"]] == [name]  # once, not twice
        assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [name]
        trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}

    config = yaml.safe_load(config_file.read_text())
    ec2 = boto3.client("ec2", region_name=REGION)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for node_type in config["available_node_types"].values():
        node_type["node_config"]["ImageId"] = ami  # the file's is a placeholder to replace
    # what `ray up` does before launching: Ray's own preparation, then its AWS bootstrap (key
    # pair, subnets, security group; it leaves profiles given in the config as they are)
    config = bootstrap_aws(prepare_config(config))
    head_type, worker_type = config["head_node_type"], "ray.worker.gpu"
    launched = {
        _launch(config, head_type, "head"): arns["head"],
        _launch(config, worker_type, "worker"): arns["worker"],
    }
    found = ec2.describe_instances(InstanceIds=list(launched))["Reservations"]
    instances = [instance for reservation in found for instance in reservation["Instances"]]
    assert len(instances) == 2
    for instance in instances:
        assert instance["IamInstanceProfile"]["Arn"] == launched[instance["InstanceId"]]
    types = {i["InstanceId"]: i["InstanceType"] for i in instances}
    assert sorted(types.values()) == ["g5.2xlarge", "m5.2xlarge"]


def test_rays_default_head_role_may_pass_no_role():
    """Why gpu.yaml's workers could not start with the head's default profile (as they did
    before cluster/iam/): Ray gives that role AmazonEC2FullAccess and AmazonS3FullAccess
    (ray/autoscaler/_private/aws/config.py), and neither grants iam:PassRole, which EC2 asks of
    whoever launches an instance with a profile (ray-project/ray#3190). The policies' text is
    AWS's, as moto bundles it."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    managed = json.loads(aws_managed_policies_data)
    defaults = [managed[name]["Document"] for name in ("AmazonEC2FullAccess", "AmazonS3FullAccess")]
    statements = [statement for document in defaults for statement in document["Statement"]]
    assert _allowed(statements, "ec2:RunInstances") == ["*"]
    assert _allowed(statements, "iam:PassRole") == []


# -- the policies as documents ---------------------------------------------------------------


def _statements(kind: str) -> list[dict]:
    roles = create_roles.Roles(BUCKET, REGION, ACCOUNT)
    return roles.policy(kind)["Statement"]


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _allowed(statements: list[dict], action: str) -> list[str]:
    """The resources the Allow statements grant ``action`` on (action wildcards matched)."""
    resources = []
    for statement in statements:
        actions = [a.lower() for a in _as_list(statement.get("Action", []))]
        if statement["Effect"] == "Allow" and any(
            fnmatch.fnmatch(action.lower(), a) for a in actions
        ):
            assert "NotAction" not in statement and "NotResource" not in statement
            resources += _as_list(statement["Resource"])
    return resources


def test_the_head_may_pass_the_worker_role_and_nothing_wider():
    statements = _statements("head")
    assert _allowed(statements, "iam:PassRole") == [f"arn:aws:iam::{ACCOUNT}:role/raysearch-worker"]
    (passing,) = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    for action in ("iam:CreateRole", "iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:GetRole"):
        assert _allowed(statements, action) == []  # no iam:* nor *, nothing else of IAM
    for action in ("ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags"):
        assert _allowed(statements, action) == ["*"]  # what Ray's autoscaler calls
    assert _allowed(statements, "ec2:DeleteVpc") == []


@pytest.mark.parametrize("kind", ["head", "worker"])
def test_s3_on_the_one_bucket_only(kind):
    statements = _statements(kind)
    bucket, objects = f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"
    assert _allowed(statements, "s3:ListBucket") == [bucket]
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert _allowed(statements, action) == [objects]
    assert _allowed(statements, "s3:DeleteBucket") == []
    assert _allowed(statements, "s3:PutBucketPolicy") == []


def test_the_worker_has_nothing_but_s3():
    actions = [a for s in _statements("worker") for a in _as_list(s["Action"])]
    assert actions and all(a.startswith("s3:") for a in actions)


def test_every_policy_file_is_complete_json():
    for path in IAM_DIR.glob("*.json"):
        json.loads(path.read_text())
    roles = create_roles.Roles(BUCKET, REGION, ACCOUNT)
    for kind in ("head", "worker"):
        assert "$" not in json.dumps(roles.policy(kind))  # every placeholder filled
