"""What a network costs to run: parameters (the real, unpadded count), multiply-adds per 3 s
segment (:func:`raysearch.model.count_macs`) and the time of a CPU forward pass per segment at
batch 1 and batch 64, measured on the machine that writes the results.

Timing: an eager ``SECNN`` in eval mode under ``torch.inference_mode`` on random segments of
the shards' shape, on one torch thread (:data:`TIMING_THREADS`: a core's cost, comparable
between machines of any core count, and steady on a shared machine, where two threads that
wait on each other are not; docs/performance.md); one warm-up pass, then passes until
:data:`MIN_REPEATS` ran and :data:`BUDGET_S` seconds passed (at most :data:`MAX_REPEATS`), the
median divided by the batch: a small network gets many passes, the report's on 513-bin
segments the minimum. Once per network shape (input size, channels, SE widths, head, classes:
what r builds, not r) and machine, for the completed trials' networks
(:func:`raysearch.results.rank.trial_frame`): the figures are kept in
``_raysearch/network_cost.json`` beside the experiment (a path or a bucket), so a rewrite of
the results never times a network again, and each entry names its CPU and thread count.
"""

from __future__ import annotations

import json
import platform
import statistics
import time

from raysearch.model import ModelConfig, reduced_width
from raysearch.storage import exists, join, read_text, write_text_atomic

# in the experiment's own folder: Tune's resume puts back the top-level .json files it found
# at its start (raysearch.results.runs)
COST_FILE = "_raysearch/network_cost.json"
TIMING_THREADS = 1
BATCHES = (1, 64)
WARMUP = 1
MIN_REPEATS = 3
MAX_REPEATS = 50
BUDGET_S = 0.2  # per network and batch: more passes while a pass is short


def shape_key(model: ModelConfig) -> str:
    """What decides a network's cost: input size, channels, each block's SE width (0 = none),
    head and classes."""
    widths = [
        reduced_width(c, model.ratio) if i + 1 in model.se_blocks else 0
        for i, c in enumerate(model.channels)
    ]
    return json.dumps(
        {
            "input": list(model.input_shape),
            "channels": list(model.channels),
            "se_widths": widths,
            "head": model.head,
            "classes": model.n_classes,
        },
        sort_keys=True,
    )


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict:
    """The CPU a timing runs on, its vector capability as torch sees it, the torch threads
    it uses and torch's version."""
    import torch

    return {
        "cpu": cpu_name(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": TIMING_THREADS,
        "torch": torch.__version__,
    }


def machine_key(info: dict) -> str:
    return f"{info['cpu']} ({info['capability']}), {info['threads']} threads, torch {info['torch']}"


def time_forward(model: ModelConfig, batch: int) -> float:
    """Milliseconds per segment of a CPU forward pass of ``batch`` segments (median), on
    :data:`TIMING_THREADS` torch threads (the process's count is restored after)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(TIMING_THREADS)
    try:
        return _time_forward(model, batch)
    finally:
        torch.set_num_threads(threads)


def _time_forward(model: ModelConfig, batch: int) -> float:
    import torch

    from raysearch.model import SECNN

    network = SECNN(model).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *model.input_shape, generator=generator)  # (B, F, T)
    times = []
    with torch.inference_mode():
        for _ in range(WARMUP):
            network(x)
        began = time.perf_counter()
        while len(times) < MIN_REPEATS or (
            len(times) < MAX_REPEATS and time.perf_counter() - began < BUDGET_S
        ):
            start = time.perf_counter()
            network(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch


def time_columns(batch: int) -> str:
    return f"cpu_ms_per_segment_b{batch}"


class NetworkCosts:
    """The CPU times of networks on this machine, from ``network_cost.json`` beside
    ``experiment`` (none without one), timing the networks not there yet when ``measure``.
    :meth:`save` writes back what was measured."""

    def __init__(self, experiment: str = "", measure: bool = False) -> None:
        self.location = join(experiment, COST_FILE) if experiment else ""
        self.measure = measure
        self.machine = machine()
        self.key = machine_key(self.machine)
        self.payload = self._load()
        self.changed = False

    def _load(self) -> dict:
        if self.location:
            try:
                if exists(self.location):
                    return json.loads(read_text(self.location))
            except (OSError, ValueError):
                pass  # unreadable: time again
        return {"machines": {}}

    @property
    def networks(self) -> dict:
        entry = self.payload["machines"].setdefault(self.key, {**self.machine, "networks": {}})
        return entry["networks"]

    def times(self, model: ModelConfig, measure: bool = True) -> dict[str, float | None]:
        """``cpu_ms_per_segment_b1`` and ``_b64`` of ``model``'s network on this machine: the
        kept figures, else measured now (when this object and ``measure`` say so), else
        None."""
        key = shape_key(model)
        found = self.networks.get(key)
        if found is None and self.measure and measure:
            try:
                found = {time_columns(b): round(time_forward(model, b), 4) for b in BATCHES}
            except (RuntimeError, ValueError, MemoryError) as exc:  # a figure, never the search
                print(f"warning: no CPU time for {key} ({type(exc).__name__}: {exc})")
                found = dict.fromkeys(time_columns(b) for b in BATCHES)
            self.networks[key] = found
            self.changed = True
        return {time_columns(b): (found or {}).get(time_columns(b)) for b in BATCHES}

    def describe(self) -> str:
        """On what the times were measured, in words."""
        info = self.machine
        threads = f"{info['threads']} torch thread{'s' if info['threads'] != 1 else ''}"
        return f"{info['cpu']} ({info['capability']}), {threads}"

    def save(self) -> None:
        if self.changed and self.location:
            write_text_atomic(self.location, json.dumps(self.payload, indent=1))
            self.changed = False
