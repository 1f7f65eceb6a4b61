"""``cluster/iam/``: the roles and instance profiles ``cluster/gpu.yaml`` names, created in
moto's IAM by ``create_roles.py``; then Ray's own AWS node provider launches the head and a GPU
worker from gpu.yaml's own ``node_config``s against moto's EC2 (botocore checks every request's
shape, moto that each instance profile exists), and each instance carries its profile. With
moto's IAM enforcement on, the calls Ray's provider makes on the head (recorded, not listed by
hand) pass with the head role's credentials and fail with the worker role's; create_roles.py
needs no right beyond its RIGHTS. The policies are checked as documents too: the head may pass
the worker role and nothing wider, and acts in its region on its cluster's instances only."""

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


def test_create_roles_needs_no_right_beyond_its_list(aws, tmp_path, capsys, monkeypatch):
    """With moto's IAM enforcement on, a user holding only RIGHTS creates the roles and, run
    again, brings them up to date (iam:UpdateAssumeRolePolicy)."""
    import boto3
    from moto.core import enable_iam_authentication

    config_file = tmp_path / "gpu.yaml"
    shutil.copy(GPU_YAML, config_file)
    _user_with(list(create_roles.RIGHTS), monkeypatch)
    with enable_iam_authentication():
        arns = _create(config_file, capsys)
        assert _create(config_file, capsys) == arns
        with pytest.raises(Exception, match="AccessDenied"):
            boto3.session.Session().client("iam").list_roles()  # a right not in the list
    assert set(arns) == {"head", "worker"}


def test_create_roles_takes_the_partition_from_the_caller(aws, capsys):
    """In China's regions the caller's ARN says arn:aws-cn (moto keeps that partition apart),
    and so do the profiles and every ARN of the policies."""
    import boto3

    argv = ["--bucket", BUCKET, "--config", str(GPU_YAML), "--region", "cn-north-1"]
    assert create_roles.main(argv) == 0, capsys.readouterr().err  # no --write: prints only
    assert f"arn:aws-cn:iam::{ACCOUNT}:instance-profile/raysearch-head" in capsys.readouterr().out
    iam = boto3.client("iam", region_name="cn-north-1")
    for name in ("raysearch-head", "raysearch-worker"):
        policy = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
        assert "arn:aws:" not in json.dumps(policy) and "arn:aws-cn:s3:::" in json.dumps(policy)


def _user_with(actions: list[str], monkeypatch) -> None:
    """An IAM user allowed ``actions`` on every resource, whose keys the environment holds."""
    import boto3

    iam = boto3.client("iam")
    iam.create_user(UserName="setup")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions}]}
    document["Statement"][0]["Resource"] = "*"
    iam.put_user_policy(UserName="setup", PolicyName="setup", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="setup")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


def test_the_cluster_readme_lists_every_right():
    from raysearch import cluster_check

    text = (REPO_ROOT / "cluster" / "README.md").read_text()
    assert [r for r in create_roles.RIGHTS + cluster_check.RIGHTS if f"`{r}`" not in text] == []


# -- the head's policy enforced: Ray's own calls, recorded ------------------------------------


class BotoCalls:
    """Every AWS call made through a boto3 session (botocore's before-call and after-call
    events), with its region, its request's query parameters and its outcome ("ok" or the
    error code)."""

    def __init__(self, session) -> None:
        self.calls: list[dict] = []
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)

    def _before(self, model, params, request_signer, **_) -> None:
        body = params.get("body")
        self.calls.append(
            {
                "operation": model.name,
                "region": request_signer.region_name,
                "query": dict(body) if isinstance(body, dict) else {},
                "outcome": None,
            }
        )

    def _after(self, model, parsed, **_) -> None:
        self.calls[-1]["outcome"] = parsed.get("Error", {}).get("Code", "ok")

    def outcomes(self) -> list[tuple[str, str]]:
        """(operation, outcome) in order, a retry of the same call and outcome once."""
        found = [(call["operation"], call["outcome"]) for call in self.calls]
        return [pair for i, pair in enumerate(found) if i == 0 or found[i - 1] != pair]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def boto_calls(aws, monkeypatch) -> BotoCalls:
    """The calls of boto3's default session, which Ray's resource_cache and client_cache
    use (its clients copy the session's event handlers when created, so the fixture gives
    the session before anything of Ray creates one: the aws fixture empties Ray's caches)."""
    import boto3

    session = boto3.session.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return BotoCalls(session)


def _assume(role: str) -> dict[str, str]:
    """Credentials of ``role`` (as an instance profile gives its node), for Ray's
    ``provider.aws_credentials``."""
    import boto3

    arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
    given = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName=f"{role}-node")
    found = given["Credentials"]
    return {
        "aws_access_key_id": found["AccessKeyId"],
        "aws_secret_access_key": found["SecretAccessKey"],
        "aws_session_token": found["SessionToken"],
    }


def _autoscaler(config: dict, credentials: dict[str, str] | None = None):
    """Ray's AWSNodeProvider as the head's autoscaler makes it (with ``credentials``, else
    the environment's)."""
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider

    provider = dict(config["provider"])
    if credentials:
        provider["aws_credentials"] = credentials
    return AWSNodeProvider(provider, config["cluster_name"])


def _worker_life(provider, node_config: dict, instance: str | None = None) -> list[str]:
    """What the head's autoscaler does to a GPU worker through Ray's provider: launch it,
    list the cluster's nodes, tag it (the updater's status), terminate it. ``instance``: act
    on that one instead of the launched one. Returns the steps that raised."""
    from ray.autoscaler.tags import TAG_RAY_NODE_KIND, TAG_RAY_NODE_STATUS, TAG_RAY_USER_NODE_TYPE

    tags = {TAG_RAY_NODE_KIND: "worker", TAG_RAY_USER_NODE_TYPE: "ray.worker.gpu"}
    steps = {
        "launch": lambda: provider.create_node(node_config, tags, 1),
        "list": lambda: provider.non_terminated_nodes({}),
        "tag": lambda: provider.set_node_tags(instance, {TAG_RAY_NODE_STATUS: "up-to-date"}),
        "terminate": lambda: provider.terminate_nodes([instance]),
    }
    raised = []
    for step, call in steps.items():
        if instance is not None:
            provider.tag_cache.setdefault(instance, {})  # what "list" fills when it may
        try:
            launched = call()
        except Exception:  # Ray wraps AWS's refusal in several kinds
            raised.append(step)
            continue
        if step == "launch" and instance is None:
            (instance,) = launched
    return raised


RAYS_CALLS = ["RunInstances", "DescribeInstances", "CreateTags", "TerminateInstances"]


def test_the_head_policy_allows_rays_calls_and_the_worker_policy_does_not(
    aws, boto_calls, monkeypatch
):
    """With moto's IAM enforcement on, Ray's AWSNodeProvider makes the head's calls with the
    head role's credentials (they succeed) and with the worker role's (each refused). moto
    evaluates the actions only: it ignores Condition (aws:RequestedRegion,
    ec2:ResourceTag/ray-cluster-name, ec2:CreateAction: see the next test), checks EC2 calls
    against Resource "*", and does not ask RunInstances for iam:PassRole or tag-on-create's
    CreateTags. So the conditions are checked here against what Ray sent: the region of
    every call, and the ray-cluster-name tag Ray puts on the instance as it launches it."""
    import boto3
    from moto.core import enable_iam_authentication
    from ray.autoscaler._private.aws import node_provider
    from ray.autoscaler.tags import TAG_RAY_CLUSTER_NAME

    monkeypatch.setattr(node_provider, "TAG_BATCH_DELAY", 0)  # Ray batches tags for 1 s
    config = yaml.safe_load(GPU_YAML.read_text())
    roles = _roles()
    assert roles.cluster == config["cluster_name"] and roles.region == config["provider"]["region"]
    arns = create_roles.create(roles, boto3.client("iam"))
    head, worker = _assume(roles.head), _assume(roles.worker)
    ec2 = boto3.client("ec2", region_name=REGION)
    node_config = dict(
        config["available_node_types"]["ray.worker.gpu"]["node_config"],
        ImageId=ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"],
        SubnetIds=[ec2.describe_subnets()["Subnets"][0]["SubnetId"]],  # Ray's bootstrap's
        IamInstanceProfile={"Arn": arns["worker"]},
    )
    boto_calls.clear()

    with enable_iam_authentication():
        assert _worker_life(_autoscaler(config, head), node_config) == []
    assert boto_calls.outcomes() == [(operation, "ok") for operation in RAYS_CALLS]
    as_head = list(boto_calls.calls)

    instance = next(iter(_autoscaler(config).create_node(node_config, {}, 1)))
    boto_calls.clear()
    with enable_iam_authentication():
        raised = _worker_life(_autoscaler(config, worker), node_config, instance)
    assert raised == ["launch", "list", "tag", "terminate"]
    assert boto_calls.outcomes() == [(operation, "AccessDenied") for operation in RAYS_CALLS]

    # the conditions moto leaves out, against Ray's requests: all in the policy's region ...
    assert {call["region"] for call in as_head} == {REGION}
    # ... the instance tagged ray-cluster-name: cluster_name as it is launched ...
    (launch,) = [call["query"] for call in as_head if call["operation"] == "RunInstances"]
    launch_tags = {
        launch[key]: launch[key.replace(".Key", ".Value")]
        for key in launch
        if key.startswith("TagSpecification.1.Tag.") and key.endswith(".Key")
    }
    assert launch["TagSpecification.1.ResourceType"] == "instance"
    assert launch_tags[TAG_RAY_CLUSTER_NAME] == config["cluster_name"]
    # ... so the later CreateTags and TerminateInstances act on an instance with that tag
    (tagged,) = [c["query"]["ResourceId.1"] for c in as_head if c["operation"] == "CreateTags"]
    (ended,) = [
        c["query"]["InstanceId.1"] for c in as_head if c["operation"] == "TerminateInstances"
    ]
    assert tagged == ended
    described = ec2.describe_instances(InstanceIds=[tagged])["Reservations"][0]["Instances"][0]
    assert {t["Key"]: t["Value"] for t in described["Tags"]}[TAG_RAY_CLUSTER_NAME] == CLUSTER


def test_moto_does_not_evaluate_the_head_policys_conditions(aws, monkeypatch):
    """A head policy made for another region and another cluster name passes Ray's calls in
    moto all the same: moto's identity-policy check ignores Condition keys. On AWS this role
    would be refused every one of them (the reason `raysearch cluster check` compares both)."""
    import boto3
    from moto.core import enable_iam_authentication
    from ray.autoscaler._private.aws import node_provider

    monkeypatch.setattr(node_provider, "TAG_BATCH_DELAY", 0)
    config = yaml.safe_load(GPU_YAML.read_text())
    elsewhere = create_roles.Roles(
        bucket=BUCKET, region="eu-north-1", cluster="another", account=ACCOUNT, partition="aws"
    )
    arns = create_roles.create(elsewhere, boto3.client("iam"))
    ec2 = boto3.client("ec2", region_name=REGION)
    node_config = {
        "InstanceType": "g5.2xlarge",
        "ImageId": ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"],
        "SubnetIds": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
        "IamInstanceProfile": {"Arn": arns["worker"]},
    }
    head = _assume(elsewhere.head)
    with enable_iam_authentication():
        assert _worker_life(_autoscaler(config, head), node_config) == []


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


CLUSTER = "raysearch-gpu"  # gpu.yaml's cluster_name


def _roles(partition: str = "aws") -> create_roles.Roles:
    return create_roles.Roles(
        bucket=BUCKET, region=REGION, cluster=CLUSTER, account=ACCOUNT, partition=partition
    )


def _statements(kind: str) -> list[dict]:
    return _roles().policy(kind)["Statement"]


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
    for action in ("ec2:DeleteVpc", "ec2:StartInstances", "ec2:StopInstances"):
        assert _allowed(statements, action) == []  # cache_stopped_nodes: false stops nothing


def _conditions(statements: list[dict], action: str) -> list[dict]:
    """The conditions of the Allow statements that grant ``action``."""
    return [
        statement.get("Condition", {})["StringEquals"]
        for statement in statements
        if statement["Effect"] == "Allow" and action in _as_list(statement["Action"])
    ]


def test_the_head_acts_in_its_region_on_its_clusters_instances_only():
    """Every EC2 right is limited to the region; TerminateInstances and CreateTags to the
    instances Ray tagged ray-cluster-name: CLUSTER (CreateTags also to tagging on launch)."""
    statements = _statements("head")
    in_region = {"aws:RequestedRegion": REGION}
    ours = {**in_region, "ec2:ResourceTag/ray-cluster-name": CLUSTER}
    assert _conditions(statements, "ec2:DescribeInstances") == [in_region]
    assert _conditions(statements, "ec2:RunInstances") == [in_region]
    assert _conditions(statements, "ec2:TerminateInstances") == [ours]
    on_launch = {**in_region, "ec2:CreateAction": "RunInstances"}
    assert sorted(map(str, _conditions(statements, "ec2:CreateTags"))) == sorted(
        map(str, [on_launch, ours])
    )


def test_the_partition_is_the_callers():
    """arn:aws-cn:..., arn:aws-us-gov:...: the partition of the caller's ARN, in every ARN."""
    assert create_roles.partition_of("arn:aws-cn:iam::123456789012:user/me") == "aws-cn"
    for kind in ("head", "worker"):
        text = json.dumps(_roles("aws-us-gov").policy(kind))
        assert "arn:aws:" not in text and "arn:aws-us-gov:s3:::" in text


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
    for kind in ("head", "worker"):
        assert "$" not in json.dumps(_roles().policy(kind))  # every placeholder filled
