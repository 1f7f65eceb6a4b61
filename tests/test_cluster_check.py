"""``raysearch cluster check`` against moto's AWS (in this process): a gpu.yaml made ready as
cluster/README.md orders it passes every check; each way of breaking it fails its own check,
in one line naming the fix; the check needs no right beyond :data:`RIGHTS`.

moto's Service Quotas (5.2) knows only VPC quotas: the ``aws`` fixture adds EC2's G/VT quota
(L-DB2E81BA) to moto's backend, at the value the test sets in ``g_quota``; the request still
goes from botocore through moto's Service Quotas endpoint."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from raysearch.cluster_check import (
    CLUSTER_TAG,
    G_ON_DEMAND,
    RIGHTS,
    check_cluster,
    load_config,
    placeholders,
)
from raysearch.commands.cluster import main
from tests.test_iam import create_roles

REPO_ROOT = Path(__file__).resolve().parent.parent
GPU_YAML = REPO_ROOT / "cluster" / "gpu.yaml"
REGION = "us-west-2"
BUCKET = "raysearch-check-bucket"
CHECKS = ["placeholders", "credentials", "profiles", "region", "cluster name", "bucket", "ami"]
CHECKS += ["quota"]


@pytest.fixture
def g_quota(monkeypatch):
    """moto's AWS with test credentials; the returned dict's "value" is the account's G/VT
    on-demand vCPU quota (64 unless a test sets it)."""
    from moto import mock_aws
    from moto.servicequotas.models import ServiceQuotasBackend

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    quota = {"value": 64.0}
    vpc_only = ServiceQuotasBackend.get_service_quota

    def get_service_quota(backend, service_code: str, quota_code: str) -> dict:
        if (service_code, quota_code) != ("ec2", G_ON_DEMAND.code):
            return vpc_only(backend, service_code, quota_code)
        return {
            "ServiceCode": "ec2",
            "QuotaCode": quota_code,
            "QuotaName": G_ON_DEMAND.name,
            "Value": quota["value"],
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    with mock_aws():
        yield quota


def ready_cluster(tmp_path: Path, capsys) -> Path:
    """gpu.yaml as a user makes it ready: the AMI of the region, the bucket, the roles
    (create_roles.py --write); returns the copy's path."""
    import boto3

    config = tmp_path / "gpu.yaml"
    ec2 = boto3.client("ec2", region_name=REGION)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    text = GPU_YAML.read_text()
    config.write_text(text.replace("ami-REPLACE-WITH-DLAMI-ID-FOR-YOUR-REGION", ami))
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    argv = ["--bucket", BUCKET, "--config", str(config), "--write"]
    assert create_roles.main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return config


def findings(config: Path, bucket: str | None = None) -> dict[str, tuple[str, str]]:
    import boto3

    loaded = load_config(config)
    session = boto3.session.Session(region_name=loaded["provider"]["region"])
    found = list(check_cluster(loaded, session, bucket))
    assert [f.check for f in found] == CHECKS
    return {f.check: (f.status, f.text) for f in found}


def failed(found: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {check: text for check, (status, text) in found.items() if status == "FAIL"}


def edit(config: Path, change) -> None:
    loaded = yaml.safe_load(config.read_text())
    change(loaded)
    config.write_text(yaml.safe_dump(loaded))


def run_command(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_a_ready_cluster_passes_every_check(g_quota, tmp_path, capsys):
    config = ready_cluster(tmp_path, capsys)
    found = findings(config)
    assert {check: status for check, (status, _) in found.items()} == dict.fromkeys(CHECKS, "ok")
    assert found["bucket"][1].startswith(f"s3://{BUCKET} exists")
    assert "4 x g5.2xlarge (8 vCPUs) = 32" in found["quota"][1]
    code, text = run_command("check", str(config))
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == len(CHECKS) + 1 and all(line.startswith("ok ") for line in lines[:-1])
    assert "ready" in lines[-1] and "ray monitor" in lines[-1]


def test_the_shipped_file_fails_on_its_placeholders_and_skips_what_needs_them(g_quota):
    found = findings(GPU_YAML, BUCKET)
    assert set(failed(found)) == {"placeholders", "bucket"}  # no bucket made in this test
    assert "create_roles.py --bucket BUCKET --write" in found["placeholders"][1]
    assert "Deep Learning Base GPU AMI of us-west-2" in found["placeholders"][1]
    for check in ("profiles", "region", "cluster name", "ami"):
        assert found[check][0] == "skip"
    assert found["quota"][0] == "ok"  # needs no placeholder
    code, text = run_command("check", str(GPU_YAML))
    assert code == 1 and "check(s) failed" in text


def test_a_region_changed_after_the_roles_fails(g_quota, tmp_path, capsys):
    """The issue's silent failure: roles made for us-west-2, the file moved to eu-west-1."""
    config = ready_cluster(tmp_path, capsys)

    def move(loaded):
        loaded["provider"]["region"] = "eu-west-1"
        loaded["provider"]["availability_zone"] = "eu-west-1a,eu-west-1b"

    edit(config, move)
    problems = failed(findings(config))
    assert set(problems) == {"region"}, problems
    assert "allows us-west-2" in problems["region"]
    assert "UnauthorizedOperation" in problems["region"]
    assert "create_roles.py --bucket BUCKET --write again" in problems["region"]
    create_roles.main(["--bucket", BUCKET, "--config", str(config), "--write"])  # the fix
    assert failed(findings(config)) == {}


def test_zones_of_another_region_fail(g_quota, tmp_path, capsys):
    config = ready_cluster(tmp_path, capsys)
    edit(config, lambda loaded: loaded["provider"].update(availability_zone="eu-west-1a"))
    assert "eu-west-1a not in provider.region us-west-2" in failed(findings(config))["region"]


def test_a_renamed_cluster_fails(g_quota, tmp_path, capsys):
    config = ready_cluster(tmp_path, capsys)
    edit(config, lambda loaded: loaded.update(cluster_name="another-name"))
    problems = failed(findings(config))
    assert set(problems) == {"cluster name"}
    assert "terminates instances of raysearch-gpu" in problems["cluster name"]


def test_a_missing_profile_fails(g_quota, tmp_path, capsys):
    import boto3

    config = ready_cluster(tmp_path, capsys)
    iam = boto3.client("iam")
    iam.remove_role_from_instance_profile(
        InstanceProfileName="raysearch-worker", RoleName="raysearch-worker"
    )
    iam.delete_instance_profile(InstanceProfileName="raysearch-worker")
    problems = failed(findings(config))
    assert set(problems) == {"profiles"}
    assert "instance-profile/raysearch-worker does not exist" in problems["profiles"]


def test_a_missing_or_other_bucket_fails(g_quota, tmp_path, capsys):
    import boto3

    config = ready_cluster(tmp_path, capsys)
    problems = failed(findings(config, bucket="s3://another-bucket/raysearch"))
    assert set(problems) == {"bucket"}
    assert "grants S3 on raysearch-check-bucket, not another-bucket" in problems["bucket"]
    boto3.client("s3").delete_bucket(Bucket=BUCKET)
    problems = failed(findings(config))
    assert problems == {
        "bucket": f"s3://{BUCKET} does not exist: create it: aws s3 mb s3://{BUCKET} "
        f"--region {REGION}"
    }


def test_an_ami_of_another_region_fails(g_quota, tmp_path, capsys):
    config = ready_cluster(tmp_path, capsys)

    def other_ami(loaded):
        for node_type in loaded["available_node_types"].values():
            node_type["node_config"]["ImageId"] = "ami-0123456789abcdef0"

    edit(config, other_ami)
    problems = failed(findings(config))
    assert set(problems) == {"ami"}
    assert problems["ami"].startswith("ami-0123456789abcdef0 does not exist in us-west-2")


@pytest.mark.parametrize(("quota", "ok"), [(0.0, False), (31.0, False), (32.0, True)])
def test_the_g_quota_must_cover_max_workers_vcpus(g_quota, tmp_path, capsys, quota, ok):
    """A new account's G quota is often 0; gpu.yaml's 4 g5.2xlarge need 32 vCPUs."""
    config = ready_cluster(tmp_path, capsys)
    g_quota["value"] = quota
    problems = failed(findings(config))
    if ok:
        assert problems == {}
        return
    assert set(problems) == {"quota"}
    assert f"Running On-Demand G and VT instances is {quota:g} vCPUs" in problems["quota"]
    assert "--quota-code L-DB2E81BA --desired-value 32 --region us-west-2" in problems["quota"]


def test_without_credentials_the_aws_checks_are_skipped(g_quota, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    found = findings(GPU_YAML)
    assert found["credentials"][0] == "FAIL" and "aws configure" in found["credentials"][1]
    assert {found[c][0] for c in CHECKS[2:]} == {"skip"}


# moto 5.2.6 (what CI installed on 2026-12-05) authorizes an S3 request by its API operation's
# name where AWS asks for the IAM action: ListObjectsV2 needs s3:ListBucket on AWS and in moto
# 5.2.1, s3:ListObjectsV2 in moto 5.2.6. A right is granted under both names, taken away under both.
MOTO_S3_NAMES = {"s3:ListBucket": ("s3:ListBucket", "s3:ListObjectsV2")}


def moto_names(rights) -> list[str]:
    """IAM rights as moto of any 5.x version checks them: each with its moto alias beside it."""
    return [name for right in rights for name in MOTO_S3_NAMES.get(right, (right,))]


def test_the_check_needs_no_right_beyond_its_list(g_quota, tmp_path, capsys, monkeypatch):
    """With moto's IAM enforcement on, a user holding only RIGHTS passes every check."""
    import boto3
    from moto.core import enable_iam_authentication

    config = ready_cluster(tmp_path, capsys)
    iam = boto3.client("iam")
    iam.create_user(UserName="checker")
    rights = {"Effect": "Allow", "Action": moto_names(RIGHTS), "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [rights]}
    iam.put_user_policy(UserName="checker", PolicyName="check", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="checker")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with enable_iam_authentication():
        assert failed(findings(config)) == {}
    rights["Action"] = moto_names(right for right in RIGHTS if right != "s3:ListBucket")
    iam.put_user_policy(UserName="checker", PolicyName="check", PolicyDocument=json.dumps(document))
    with enable_iam_authentication():
        assert "may not list it" in failed(findings(config))["bucket"]


# -- no AWS --------------------------------------------------------------------------------------


def test_placeholders_of_the_shipped_file():
    head, worker = "ray.head.cpu", "ray.worker.gpu"
    assert placeholders(load_config(GPU_YAML)) == {
        "ImageId": [head, worker],
        "IamInstanceProfile.Arn": [head, worker],
    }


def test_a_placeholder_anywhere_is_named(tmp_path):
    config = tmp_path / "gpu.yaml"
    shutil.copy(GPU_YAML, config)
    edit(config, lambda loaded: loaded["provider"].update(region="REPLACE-WITH-REGION"))
    assert placeholders(load_config(config))["provider.region"] == ["the file"]


def test_rays_cluster_tag_is_the_one_checked():
    from ray.autoscaler.tags import TAG_RAY_CLUSTER_NAME

    assert CLUSTER_TAG == TAG_RAY_CLUSTER_NAME


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("provider: {type: local, head_ip: 1.2.3.4}", "not 'aws'"),
        ("provider: {type: aws}", "no provider.region"),
        ("[1, 2", "not YAML (expected ',' or ']', but got '<stream end>' at line 1, column 6)"),
        ("", "not a Ray cluster config"),
    ],
)
def test_a_config_that_cannot_be_checked_is_one_line(tmp_path, text, error):
    config = tmp_path / "x.yaml"
    config.write_text(text)
    code, output = run_command("check", str(config))
    assert code == 2 and output.count("\n") == 1 and error in output
