"""Ray's own fake autoscaler on one machine: a head node plus worker node types that the
autoscaler launches (as real raylets on this machine) when pending work needs them.

``ray.cluster_utils.AutoscalingCluster`` does this in Ray 2.60 but cannot run from the wheel:
it reads ``fake_multi_node/example.yaml``, which the wheel does not ship, and its ``start`` /
``shutdown`` run ``ray stop --force``, which would kill every other Ray instance on the
machine. This helper builds the config in code (the fake node provider loaded as an
``external`` provider, so no defaults file is needed), starts the head with autoscaler v2 (what
``ray up`` uses since Ray 2.50), and kills only this cluster's processes: those started under
its temporary folder or talking to its GCS port, and their children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.local_cluster import _kill, _processes, _with_descendants, free_port

FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"


def autoscaling_config(head_resources: dict, worker_node_types: dict, gcs_address: str) -> dict:
    """A cluster-launcher config for the fake provider (the shape ``ray up`` writes)."""
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    types = {name: {"node_config": {}, **spec} for name, spec in worker_node_types.items()}
    types["ray.head.default"] = {"resources": head_resources, "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "fake-autoscaling",
        "max_workers": sum(t.get("max_workers", 0) for t in worker_node_types.values()),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        "provider": {
            "type": "external",
            "module": FAKE_PROVIDER,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "launch_multiple": True,
            "head_node_id": FAKE_HEAD_NODE_ID,
            "gcs_address": gcs_address,
        },
        "auth": {},
        "docker": {},
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class FakeAutoscalingCluster:
    """``with FakeAutoscalingCluster({"CPU": 1}, {"gpu_node": {...}}) as cluster: ...``"""

    def __init__(self, head_resources: dict, worker_node_types: dict) -> None:
        import ray._private.services

        self.head_cpus = head_resources.get("CPU", 0)
        self.port = free_port()
        self.address = f"{ray._private.services.get_node_ip_address()}:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="rsas-", dir="/tmp")  # short: socket paths
        self.config = autoscaling_config(head_resources, worker_node_types, self.address)
        self.config_file = Path(self.temp_dir) / "autoscaling.json"
        self.config_file.write_text(json.dumps(self.config))
        from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

        bin_dir = str(Path(sys.executable).parent)  # the autoscaler runs the `ray` CLI
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",  # explicit, as in tests/local_cluster.py
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            "RAY_enable_autoscaler_v2": "1",
            "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
            "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
        }

    def __enter__(self) -> FakeAutoscalingCluster:
        command = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            f"--port={self.port}",
            f"--num-cpus={self.head_cpus}",
            "--num-gpus=0",
            f"--autoscaling-config={self.config_file}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start --head failed:\n{done.stderr[-2000:]}")
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def cluster_pids(self) -> set[int]:
        table = _processes()
        roots = {
            pid
            for pid, (_, cmd) in table.items()
            if (self.temp_dir in cmd or f":{self.port}" in cmd) and pid != os.getpid()
        }
        return _with_descendants(roots, table)

    def stop(self) -> None:
        for _ in range(3):
            pids = self.cluster_pids()
            if not pids:
                break
            _kill(pids)
            time.sleep(0.5)
        import shutil

        shutil.rmtree(self.temp_dir, ignore_errors=True)
