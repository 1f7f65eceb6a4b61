"""Offline checks of the Ray cluster-launcher configs in ``cluster/``.

Every launcher config goes through the installed Ray's own config preparation and schema
validation -- the first two steps of ``ray up`` (``ray.autoscaler._private.commands.
_bootstrap_config``): ``prepare_config`` (merge the provider's defaults.yaml, run the local
provider's checks, merge setup commands, check docker, fill per-type worker counts) and
``validate_config`` (``ray-schema.json`` plus the head-node-type and worker-count checks).
The next step of ``ray up``, the provider's ``bootstrap_config``, talks to AWS (boto3:
key pairs, IAM, subnets, AMIs) and is deliberately not called: no network, no SSH, no
cloud account, no Ray cluster.

Ray does not look inside ``node_config`` (it is handed to EC2 as-is) nor at what the
commands do, so the project-specific checks below cover that: the image's Ray version,
the project install, the code mount, the node types and the GPU worker type.

The shipped gpu.yaml holds placeholders a user must replace (the AMI, the profiles' ARNs):
these checks see the file's structure only, and the placeholders are what ``raysearch cluster
check`` reports (``raysearch.cluster_check.placeholders``): the shipped file's, and none once
filled in (its AWS checks are tests/test_cluster_check.py's, against moto).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DIR = REPO_ROOT / "cluster"
# Launcher configs that must exist (deleting one must fail a test).
EXPECTED_LAUNCHER_CONFIGS = {"gpu.yaml", "local.yaml"}

# AWS instance families with NVIDIA GPUs, and (vCPUs, GPUs) of the types the comments name,
# to catch an InstanceType changed without its `resources`.
GPU_FAMILIES = {
    "g4dn",
    "g5",
    "g6",
    "g6e",
    "gr6",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6",
}
KNOWN_INSTANCE_SHAPES = {
    "m5.xlarge": (4, 0),
    "m5.2xlarge": (8, 0),
    "m5.4xlarge": (16, 0),
    "g4dn.xlarge": (4, 1),
    "g4dn.2xlarge": (8, 1),
    "g5.xlarge": (4, 1),
    "g5.2xlarge": (8, 1),
    "g5.4xlarge": (16, 1),
    "g6.xlarge": (4, 1),
    "g6.2xlarge": (8, 1),
    "g6e.xlarge": (4, 1),
    "p4d.24xlarge": (96, 8),
    "p5.48xlarge": (192, 8),
}
IMAGE_RE = re.compile(
    r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>3)(?P<pyminor>\d+)-(?P<platform>gpu|cu\d+)$"
)


def _is_kubernetes_manifest(path: Path) -> bool:
    doc = yaml.safe_load(path.read_text())
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


LAUNCHER_CONFIGS = sorted(
    p.name for p in CLUSTER_DIR.glob("*.yaml") if not _is_kubernetes_manifest(p)
)


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER_DIR / name).read_text())


def prepare_and_validate(config: dict) -> dict:
    """What ``ray up`` does before it contacts the provider: prepare, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def project_pins() -> tuple[str, tuple[int, int]]:
    """(pinned Ray version, minimum Python) from pyproject.toml."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    ray_pin = re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', text)
    python_min = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text)
    assert ray_pin and python_min, "pyproject.toml: ray pin or requires-python not found"
    return ray_pin.group(1), (int(python_min.group(1)), int(python_min.group(2)))


# -- project-specific checks (return a list of problems; empty means fine) -----------------


def image_problems(config: dict) -> list[str]:
    docker = config.get("docker") or {}
    images = [docker.get(key) for key in ("image", "head_image", "worker_image")]
    for node_type in (config.get("available_node_types") or {}).values():
        images.append((node_type.get("docker") or {}).get("worker_image"))
    images = [image for image in images if image]
    if not images:
        return ["no docker image: the nodes would run whatever Ray the machine has"]
    ray_pin, python_min = project_pins()
    problems = []
    for image in images:
        match = IMAGE_RE.match(image)
        if not match:
            problems.append(f"{image!r} is not rayproject/ray:<x.y.z>-py3<minor>-<gpu|cuXXX>")
            continue
        if match["ray"] != ray.__version__:
            problems.append(f"{image}: Ray {match['ray']} != installed Ray {ray.__version__}")
        if match["ray"] != ray_pin:
            problems.append(f"{image}: Ray {match['ray']} != project pin {ray_pin}")
        if (3, int(match["pyminor"])) < python_min:
            problems.append(f"{image}: Python 3.{match['pyminor']} < requires-python {python_min}")
    return problems


def mount_target(config: dict) -> str | None:
    """The remote path the repository (".") is mounted at."""
    for remote, local in (config.get("file_mounts") or {}).items():
        if Path(local) == Path("."):
            return remote
    return None


def install_problems(prepared: dict) -> list[str]:
    target = mount_target(prepared)
    if target is None:
        return ["file_mounts does not mount the repository ('.')"]
    problems = []
    install = re.compile(
        rf"\bpip install (-e |--editable )?{re.escape(target.rstrip('/'))}/?(\s|$)"
    )
    for key in ("head_setup_commands", "worker_setup_commands"):
        commands = prepared.get(key) or []
        if not any(install.search(command) for command in commands):
            problems.append(f"{key} do not `pip install` the project at {target}")
        for command in commands:
            # torch comes with the project's own pin; a separate install would pull a second
            # (or a mismatched) torch next to the one the project resolves.
            if re.search(r"\bpip install\b.*\btorch\b", command):
                problems.append(f"{key}: separate torch install {command!r}")
    return problems


def node_type_problems(prepared: dict) -> list[str]:
    node_types = prepared.get("available_node_types") or {}
    problems = []
    if prepared.get("head_node_type") not in node_types:
        problems.append(f"head_node_type {prepared.get('head_node_type')!r} not a node type")
    for name, node_type in node_types.items():
        for key in ("resources", "node_config"):
            if not isinstance(node_type.get(key), dict):
                problems.append(f"{name}: missing {key}")
        resources = node_type.get("resources") or {}
        if prepared["provider"]["type"] != "aws":
            continue
        node_config = node_type.get("node_config") or {}
        instance_type = node_config.get("InstanceType")
        if not instance_type:
            problems.append(f"{name}: node_config has no InstanceType")
        if not str(node_config.get("ImageId", "")).startswith("ami-"):
            problems.append(f"{name}: node_config has no ImageId (Ray's default AMI is stale)")
        shape = KNOWN_INSTANCE_SHAPES.get(instance_type)
        if shape:
            for resource, count in zip(("CPU", "GPU"), shape, strict=True):
                if resource in resources and resources[resource] > count:
                    problems.append(
                        f"{name}: resources {resource}={resources[resource]} but "
                        f"{instance_type} has {count}"
                    )
    return problems


def gpu_worker_problems(prepared: dict) -> list[str]:
    """AWS: some worker type must bring an NVIDIA GPU the autoscaler can plan with."""
    if prepared["provider"]["type"] != "aws":
        return []
    head = prepared["head_node_type"]
    for name, node_type in prepared["available_node_types"].items():
        if name == head or node_type.get("max_workers", 0) < 1:
            continue
        instance_type = node_type["node_config"].get("InstanceType", "")
        family = instance_type.split(".")[0]
        gpus = node_type.get("resources", {}).get("GPU")
        if family in GPU_FAMILIES and (gpus is None or gpus >= 1):
            return []
    return ["no worker node type with a GPU instance (and GPU >= 1 in its resources)"]


def all_problems(config: dict) -> list[str]:
    prepared = prepare_and_validate(config)
    return (
        image_problems(prepared)
        + install_problems(prepared)
        + node_type_problems(prepared)
        + gpu_worker_problems(prepared)
    )


# -- the files as they are ------------------------------------------------------------------


def test_expected_configs_present():
    assert EXPECTED_LAUNCHER_CONFIGS <= set(LAUNCHER_CONFIGS)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_ray_prepares_and_validates(name):
    prepared = prepare_and_validate(load(name))
    assert prepared["cluster_name"].startswith("raysearch")
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_image_matches_installed_ray_and_project_pins(name):
    assert image_problems(load(name)) == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_repo_is_mounted_and_installed(name):
    prepared = prepare_and_validate(load(name))
    assert (REPO_ROOT / "pyproject.toml").is_file()  # "." (where `ray up` runs) is this repo
    assert install_problems(prepared) == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_node_types(name):
    assert node_type_problems(prepare_and_validate(load(name))) == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_start_commands(name):
    prepared = prepare_and_validate(load(name))
    head = " ; ".join(prepared["head_start_ray_commands"])
    worker = " ; ".join(prepared["worker_start_ray_commands"])
    assert "ray start --head" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_bulky_paths_not_synced(name):
    excluded = " ".join(load(name).get("rsync_exclude") or [])
    for path in (".git", ".venv", "data", "shards", "ray_results"):
        assert f"/{path}/" in excluded, f"{path}/ would be rsynced to every node"


def test_gpu_yaml_specifics():
    config = load("gpu.yaml")
    prepared = prepare_and_validate(config)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["cache_stopped_nodes"] is False  # no stopped nodes billing EBS
    assert gpu_worker_problems(prepared) == []
    # The autoscaler on the head needs boto3 to launch EC2 instances.
    assert any("boto3" in command for command in prepared["head_setup_commands"])
    workers = [
        node_type
        for name, node_type in prepared["available_node_types"].items()
        if name != prepared["head_node_type"]
    ]
    assert all(node_type["min_workers"] == 0 for node_type in workers)  # GPUs only on demand
    # trials sharing a worker's GPU are clients of a CUDA MPS daemon started before Ray, by a
    # script of the repository (as mounted on the node) that reports a failure, not swallows it
    starts = prepared["worker_start_ray_commands"]
    script = f"{mount_target(prepared)}/cluster/start_mps.sh"
    mps = [i for i, command in enumerate(starts) if command == f"bash {script}"]
    ray_start = [i for i, command in enumerate(starts) if command.startswith("ray start")]
    assert mps and ray_start and mps[0] < ray_start[0]
    assert (REPO_ROOT / "cluster" / "start_mps.sh").is_file()
    assert not [c for c in starts if re.search(r"\|\|\s*(echo|true)|2>\s*/dev/null", c)]
    # each node type its own instance profile, by ARN (cluster/iam/create_roles.py --write)
    assert iam_problems(prepared) == []


def iam_problems(prepared: dict) -> list[str]:
    """AWS: the head's and the workers' instance profiles are named, by ARN, and differ; the
    workers' is not Ray's default head profile (its role may pass no role: tests/test_iam.py).
    The ARN's shape only: its account may still be the placeholder (see placeholders)."""
    head = prepared["head_node_type"]
    arns = {}
    for name, node_type in prepared["available_node_types"].items():
        profile = node_type["node_config"].get("IamInstanceProfile") or {}
        if not re.fullmatch(
            r"arn:aws:iam::[^:]+:instance-profile/[\w+=,.@-]+", profile.get("Arn", "")
        ):
            return [
                f"{name}: IamInstanceProfile is not {{Arn: arn:aws:iam::...:instance-profile/...}}"
            ]
        arns[name] = profile["Arn"]
    problems = []
    for name, arn in arns.items():
        if name != head and (arn == arns[head] or arn.endswith("/ray-autoscaler-v1")):
            problems.append(f"{name}: has the head's profile {arn}")
    return problems


def test_create_roles_writes_the_arns_gpu_yaml_names(tmp_path):
    """The two `# iam:` lines are where create_roles.py --write puts the ARNs, and Ray reads
    them there as each node type's profile."""
    from tests.test_iam import create_roles

    config = tmp_path / "gpu.yaml"
    config.write_text((CLUSTER_DIR / "gpu.yaml").read_text())
    arns = {
        kind: f"arn:aws:iam::111122223333:instance-profile/x-{kind}" for kind in ("head", "worker")
    }
    create_roles.write_arns(config, arns)
    prepared = prepare_and_validate(yaml.safe_load(config.read_text()))
    profiles = {
        name: node_type["node_config"]["IamInstanceProfile"]["Arn"]
        for name, node_type in prepared["available_node_types"].items()
    }
    assert profiles == {"ray.head.cpu": arns["head"], GPU_WORKER: arns["worker"]}
    assert iam_problems(prepared) == []
    # nothing else in the file changed
    before = (CLUSTER_DIR / "gpu.yaml").read_text().splitlines()
    after = config.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [
        i for i, line in enumerate(before) if create_roles.ARN_LINE.match(line)
    ]


def test_the_check_reports_the_shipped_placeholders_and_none_once_filled_in(tmp_path):
    from raysearch.cluster_check import load_config, placeholders
    from tests.test_iam import create_roles

    node_types = ["ray.head.cpu", GPU_WORKER]
    shipped = CLUSTER_DIR / "gpu.yaml"
    assert placeholders(load_config(shipped)) == {
        "ImageId": node_types,
        "IamInstanceProfile.Arn": node_types,
    }
    config = tmp_path / "gpu.yaml"
    text = shipped.read_text()
    config.write_text(
        text.replace("ami-REPLACE-WITH-DLAMI-ID-FOR-YOUR-REGION", "ami-0a1b2c3d4e5f67890")
    )
    assert placeholders(load_config(config)) == {"IamInstanceProfile.Arn": node_types}
    arns = {
        kind: f"arn:aws:iam::111122223333:instance-profile/raysearch-{kind}"
        for kind in ("head", "worker")
    }
    create_roles.write_arns(config, arns)
    assert placeholders(load_config(config)) == {}
    filled = yaml.safe_load(config.read_text())
    assert all_problems(filled) == [] and iam_problems(prepare_and_validate(filled)) == []


def test_old_worker_profile_is_a_problem():
    config = load("gpu.yaml")
    worker = config["available_node_types"][GPU_WORKER]["node_config"]
    worker["IamInstanceProfile"] = {"Name": "ray-autoscaler-v1"}  # what gpu.yaml had
    assert iam_problems(prepare_and_validate(config)) != []
    head = config["available_node_types"]["ray.head.cpu"]["node_config"]
    worker["IamInstanceProfile"] = dict(head["IamInstanceProfile"])  # the head's, by ARN
    assert iam_problems(prepare_and_validate(config)) != []


def test_local_yaml_specifics():
    config = load("local.yaml")
    assert config["provider"]["type"] == "local"
    # Ray's local provider aborts on these (it builds its own single node type).
    assert "available_node_types" not in config and "head_node_type" not in config
    prepared = prepare_and_validate(config)
    assert prepared["max_workers"] == len(config["provider"]["worker_ips"])


# -- broken configs must fail -------------------------------------------------------------


def _delete(*keys):
    def mutate(config):
        node = config
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


def _set(value, *keys):
    def mutate(config):
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _rename(old, new):
    def mutate(config):
        config[new] = config.pop(old)

    return mutate


GPU_WORKER = "ray.worker.gpu"
# (file, what breaks, mutation, exception Ray raises in prepare_config / validate_config)
BROKEN_FOR_RAY = [
    ("gpu.yaml", "no provider", _delete("provider"), KeyError),
    # head_node_type then falls back to aws defaults.yaml's "ray.head.default", not a type here
    ("gpu.yaml", "no head_node_type", _delete("head_node_type"), ValueError),
    (
        "gpu.yaml",
        "no node_config",
        _delete("available_node_types", GPU_WORKER, "node_config"),
        jsonschema.ValidationError,
    ),
    (
        "gpu.yaml",
        "no resources",
        _delete("available_node_types", GPU_WORKER, "resources"),
        jsonschema.ValidationError,
    ),
    (
        "gpu.yaml",
        "typo'd key",
        _rename("head_setup_commands", "head_setup_commandz"),
        jsonschema.ValidationError,
    ),
    ("gpu.yaml", "unknown top-level key", _set(1, "gpus_per_trial"), jsonschema.ValidationError),
    # node resources are integers: the fraction belongs to the trial, not the node
    (
        "gpu.yaml",
        "fractional node GPU",
        _set({"CPU": 8, "GPU": 0.25}, "available_node_types", GPU_WORKER, "resources"),
        jsonschema.ValidationError,
    ),
    (
        "gpu.yaml",
        "commands not a list",
        _set("ray start --address=$RAY_HEAD_IP:6379", "worker_start_ray_commands"),
        jsonschema.ValidationError,
    ),
    (
        "gpu.yaml",
        "min_workers above max_workers",
        _set(5, "available_node_types", GPU_WORKER, "min_workers"),
        ValueError,
    ),
    (
        "gpu.yaml",
        "docker without container_name",
        _delete("docker", "container_name"),
        AssertionError,
    ),
    ("local.yaml", "no provider", _delete("provider"), KeyError),
    ("local.yaml", "no head_ip", _delete("provider", "head_ip"), click.ClickException),
    (
        "local.yaml",
        "node types given",
        _set({"gpu": {"resources": {}, "node_config": {}}}, "available_node_types"),
        click.ClickException,
    ),
    (
        "local.yaml",
        "typo'd key",
        _rename("worker_start_ray_commands", "worker_start_commands"),
        jsonschema.ValidationError,
    ),
]


@pytest.mark.parametrize(
    ("name", "mutation", "error"),
    [
        pytest.param(name, mutation, error, id=f"{name}-{what}")
        for name, what, mutation, error in BROKEN_FOR_RAY
    ],
)
def test_ray_rejects_broken_config(name, mutation, error):
    config = load(name)
    prepare_and_validate(config)  # the intact file passes ...
    mutation(config)
    with pytest.raises(error):  # ... and the broken one does not
        prepare_and_validate(config)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
@pytest.mark.parametrize("key", ["provider", "cluster_name", "head_node_type"])
def test_schema_rejects_prepared_config_without(name, key):
    """validate_config alone (on prepare_config's output) catches a missing required key."""
    prepared = prepare_and_validate(load(name))
    del prepared[key]
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_config(prepared)


BROKEN_FOR_US = [
    ("gpu.yaml", "stale Ray image", _set("rayproject/ray:2.9.0-py311-gpu", "docker", "image")),
    (
        "gpu.yaml",
        "Python too old",
        _set(f"rayproject/ray:{ray.__version__}-py39-gpu", "docker", "image"),
    ),
    (
        "gpu.yaml",
        "ray-ml image",
        _set(f"rayproject/ray-ml:{ray.__version__}-py311-gpu", "docker", "image"),
    ),
    ("gpu.yaml", "project not installed", _set(["pip install boto3"], "setup_commands")),
    (
        "gpu.yaml",
        "second torch",
        _set(["pip install torch", "pip install -e /home/ray/raysearch"], "setup_commands"),
    ),
    ("gpu.yaml", "repo not mounted", _set({}, "file_mounts")),
    (
        "gpu.yaml",
        "CPU-only workers",
        _set("m5.2xlarge", "available_node_types", GPU_WORKER, "node_config", "InstanceType"),
    ),
    (
        "gpu.yaml",
        "resources larger than the instance",
        _set("g5.xlarge", "available_node_types", GPU_WORKER, "node_config", "InstanceType"),
    ),
    (
        "gpu.yaml",
        "no ImageId",
        _delete("available_node_types", GPU_WORKER, "node_config", "ImageId"),
    ),
    ("local.yaml", "stale Ray image", _set("rayproject/ray:2.9.0-py311-gpu", "docker", "image")),
    ("local.yaml", "project not installed", _set([], "setup_commands")),
]


@pytest.mark.parametrize(
    ("name", "mutation"),
    [pytest.param(name, mutation, id=f"{name}-{what}") for name, what, mutation in BROKEN_FOR_US],
)
def test_project_checks_reject_broken_config(name, mutation):
    config = load(name)
    assert all_problems(config) == []
    mutation(config)
    assert all_problems(config) != []
