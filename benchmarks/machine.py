"""Machine facts the benchmarks record beside their numbers: load average and the CPU time
other processes took during a run (to show when something else disturbed a measurement); and
the local Ray instance both benchmarks start the same way."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # a benchmark run from a checkout without installing the package
    sys.path.insert(0, str(REPO))


def uptime_line() -> str:
    try:
        done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
        return done.stdout.strip()
    except OSError:
        return ""


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_snapshot() -> dict | None:
    """Busy CPU seconds of the whole machine and of this process tree (Linux /proc only).

    The difference of two snapshots gives the CPU time other processes (another developer's
    tests) took during a run: ``other_cpu_s``. Approximate: processes of this tree that exit
    between the snapshots and are not reaped by a process of this tree count as "other".
    """
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        busy = sum(values) - values[3] - values[4]  # minus idle and iowait
        parent: dict[int, int] = {}
        own: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry)] = int(fields[1])
            # utime + stime, plus cutime + cstime: children that exited and were reaped
            # (Ray Train's workers exit when fit() returns; the raylet reaps them)
            own[int(entry)] = sum(int(v) for v in fields[11:15])
        me = os.getpid()
        ours = 0
        for pid, ticks in own.items():
            p = pid
            while p > 1 and p != me:
                p = parent.get(p, 0)
            if p == me:
                ours += ticks
        return {"busy_s": busy / tick, "ours_s": ours / tick}
    except (OSError, ValueError, IndexError):
        return None


def other_cpu_s(before: dict | None, after: dict | None) -> float | None:
    if not before or not after:
        return None
    return round((after["busy_s"] - before["busy_s"]) - (after["ours_s"] - before["ours_s"]), 2)


def machine_facts(modules: tuple[str, ...], repo: Path) -> dict:
    """Cores, memory, CPU model, git commit and the versions of ``modules``."""
    import importlib

    versions = {"python": platform.python_version()}
    for name in modules:
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - a missing module is a fact too
            versions[name] = None
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), ""
            )
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        # a tree that differs from HEAD (uncommitted work; the device tool's copy, whose HEAD
        # can lag the files it carries) did not run HEAD's code: say so
        if commit and git("status", "--porcelain", "--untracked-files=no"):
            commit += "+changes"
    except OSError:
        commit = ""
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "platform": platform.platform(),
        "git_commit": commit,
        "versions": versions,
    }


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_local_ray(num_cpus: int, repo: Path, **init_args) -> float:
    """A fresh local Ray instance for a benchmark; returns the seconds ``ray.init`` took.

    The checkout goes on the workers' ``PYTHONPATH`` (they import raysearch too, installed or
    not); no dashboard; Ray Data's logs quieted to warnings. ``init_args`` go to ``ray.init``.
    """
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p
    )
    started = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        **init_args,
    )
    elapsed = time.perf_counter() - started
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return elapsed
