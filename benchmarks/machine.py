"""Machine facts the benchmarks record beside their numbers: load average and the CPU time
other processes took during a run (to show when something else disturbed a measurement)."""

from __future__ import annotations

import os
import subprocess


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
