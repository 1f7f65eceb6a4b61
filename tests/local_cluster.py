"""A real multi-node Ray cluster on one machine: a head and worker nodes as separate
``ray start`` processes, each with its own CPU count and custom resource.

Token authentication stays on (Ray's default since 2.59, made explicit with RAY_AUTH_MODE) and
the cluster is reachable on loopback only: Ray 2.60 rewrites ``--node-ip-address=127.0.0.1``
to the machine's address and listens on every interface, so the nodes and the driver run in a
network namespace of their own whose only interface is ``lo``.
Every process of the cluster is found through its temporary folder and killed on exit, even
when the test fails; a single worker node can be killed on its own to simulate a node loss.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def _with_descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalCluster:
    """``with LocalCluster(workers={"node_a": 1, "node_b": 1}) as cluster: ...``"""

    def __init__(self, workers: dict[str, int], head_cpus: int = 1) -> None:
        self.workers = workers
        self.head_cpus = head_cpus
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        # short: Ray puts Unix sockets under it, and their paths are limited to 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="rsmn-", dir="/tmp")
        self.netns = os.path.basename(self.temp_dir)
        # every process of this cluster (the state API in Ray Train's placement-group cleaner
        # included) must find this cluster, not another Ray instance on the machine
        self.env = {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token"}

    def command(self, *args: str) -> list[str]:
        """A command line that runs inside the cluster's network namespace."""
        return ["ip", "netns", "exec", self.netns, *args]

    def _ray(self, *args: str) -> None:
        ray_cli = str(Path(sys.executable).with_name("ray"))
        done = subprocess.run(
            self.command(ray_cli, "start", *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stderr[-2000:]}")

    def __enter__(self) -> LocalCluster:
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(self.command("ip", "link", "set", "lo", "up"), check=True)
        try:
            self._ray(
                "--head",
                f"--port={self.port}",
                f"--node-ip-address={LOOPBACK}",
                f"--num-cpus={self.head_cpus}",
                "--num-gpus=0",
                f"--resources={json.dumps({'head_node': 1})}",
                "--disable-usage-stats",
                f"--temp-dir={self.temp_dir}",
            )
            for name, cpus in self.workers.items():
                self._ray(
                    f"--address={self.address}",
                    f"--node-ip-address={LOOPBACK}",
                    f"--num-cpus={cpus}",
                    "--num-gpus=0",
                    f"--resources={json.dumps({name: 1})}",
                    "--disable-usage-stats",
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def cluster_pids(self) -> set[int]:
        table = _processes()
        roots = {
            pid for pid, (_, cmd) in table.items() if self.temp_dir in cmd and pid != os.getpid()
        }
        return _with_descendants(roots, table)

    def kill_worker_node(self, name: str) -> int:
        """Kill one worker node: its raylet and everything under it (workers, agents)."""
        table = _processes()
        raylets = {
            pid
            for pid, (_, cmd) in table.items()
            if "raylet" in cmd and f"{name}," in cmd and self.temp_dir in cmd
        }
        if not raylets:
            raise RuntimeError(f"no raylet of worker node {name} found")
        pids = _with_descendants(raylets, table)
        _kill(pids)
        return len(pids)

    def stop(self) -> None:
        for _ in range(3):
            pids = self.cluster_pids()
            if not pids:
                break
            _kill(pids)
            time.sleep(0.5)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
