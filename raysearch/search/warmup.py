"""Compile once before the trials: one compile per channel configuration of the first wave.

A compiled trial pads its SE bottlenecks (``SECNN(pad_se=True)``), so every ratio r of a
channel configuration compiles to the same two graphs (forward, backward) and Inductor's
on-disk cache can serve them to every trial after the first. But a search starts K trials at
once, and on one GPU node they are all of the first configuration: without this, K processes
compile the same graphs at the same moment, each with Inductor's default worker pool (one
process per CPU of the node), K x CPUs compile processes on the node's CPUs (256 on a 16-core
GPU machine with K = 16).

Before the first trial, :func:`warm_up` runs one short task per distinct graph of the first
wave: the space's initial points (Optuna suggests them first), or, when the space searches
nothing that changes the graph, any one of its configurations. Each task holds what a trial
holds (so it lands on the node the trials will run on, a GPU node when they use GPUs), runs
the loop's own first steps there (:func:`raysearch.training.loop.fit` on a few segments, the
exact graph a trial builds: same network sized for the shards, batch size, kernels, autocast
and memory format) with every CPU of the node compiling, and leaves the graphs in the node's
Inductor cache. The trials then load them (``graphs_compiled`` 0 in the leaderboard) and each
compiles with the CPUs it holds only (``loop.set_compile_threads``), so a trial of a later
configuration compiles without crowding the others. Evaluation runs the uncompiled module
(``loop._Run.evaluate``): it has no graph to warm. On a cluster of several GPU nodes only the
node the task ran on is warmed; the first trial of each other node compiles there.

Pure bookkeeping besides the task: the time is printed and recorded in the driver's run
(:mod:`raysearch.results.runs`), so the search's wall time includes it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from raysearch.model import ModelConfig
from raysearch.search.gpu_share import MEMORY_DIMENSIONS
from raysearch.search.space import SearchSpace, _example
from raysearch.training.config import TrainConfig

# searched dimensions that change the compiled graph (the ratio does not: padded SE)
GRAPH_DIMENSIONS = (*MEMORY_DIMENSIONS, "kernels")
WARMUP_SEGMENTS = 2  # training batches the task runs: the first compiles, the second checks


@dataclasses.dataclass(frozen=True)
class WarmUp:
    """What the warm-up did: the graphs it compiled (or loaded), per configuration, and its
    wall time from the first task's submission to the last one's end."""

    seconds: float
    configurations: tuple[tuple[int, ...], ...]  # the channels of each warmed configuration
    graphs_compiled: int  # graphs the tasks compiled (0 when the node's cache had them)
    graphs_cached: int  # graphs the tasks found in the node's cache
    keys: tuple[str, ...] = ()  # the cache keys they wrote or found (a trial's graph_keys)

    def to_dict(self) -> dict:
        return {
            "seconds": round(self.seconds, 1),
            "configurations": [list(c) for c in self.configurations],
            "graphs_compiled": self.graphs_compiled,
            "graphs_cached": self.graphs_cached,
            "keys": list(self.keys),
        }

    def line(self) -> str:
        channels = "; ".join(",".join(map(str, c)) for c in self.configurations)
        found = f", {self.graphs_cached} found in the cache" if self.graphs_cached else ""
        return (
            f"compile warm-up: {len(self.configurations)} channel configuration(s) ({channels}) "
            f"compiled once before the trials in {self.seconds:.1f} s ({self.graphs_compiled} "
            f"graph(s) compiled{found}); the first wave's trials load them from Inductor's cache"
        )


def graph_key(model: ModelConfig, train: TrainConfig) -> tuple:
    """What decides a padded network's compiled graphs: everything but the ratio (padding)
    and the standardisation values (buffers, inputs of the graph)."""
    normalised = dataclasses.replace(model, ratio=1.0, input_mean=0.0, input_std=1.0)
    return (
        normalised,
        train.batch_size,
        train.kernels_for(train.compile_mode(bool(train.use_gpu))),
        train.amp,
        train.channels_last,
        train.compile,
    )


def first_wave(space: SearchSpace, concurrency: int) -> list[dict]:
    """Sampled configurations (parameter → value, as Optuna hands them out) whose graphs the
    first wave will need: the initial points it starts with, or one example when the space
    searches nothing that changes the graph (every configuration then has the same one)."""
    points = [dict(p) for p in space.initial_points[: max(1, concurrency)]]
    if points:
        return points
    if any(p.name in GRAPH_DIMENSIONS for p in space.params):
        return []  # Optuna's first samples are not known before they are drawn
    return [{p.name: _example(p) for p in space.params}]


def configurations_to_warm(
    configs: Callable[[dict], tuple[ModelConfig, TrainConfig]], sampled: list[dict]
) -> list[tuple[ModelConfig, TrainConfig]]:
    """One (model, train) pair per distinct graph of ``sampled`` (``configs`` sizes a sampled
    configuration for the shards, as the trials do), in order; none when trials do not
    compile."""
    chosen, seen = [], set()
    for config in sampled:
        model, train = configs(config)
        key = graph_key(model, train)
        if key in seen:
            continue
        seen.add(key)
        chosen.append((model, train))
    return chosen


def warm_up(
    pairs: list[tuple[ModelConfig, TrainConfig]],
    splits_ref,
    resources: dict,
    say: Callable[[str], None] = print,
) -> WarmUp | None:
    """Run one compile task per pair (``resources``: what a trial holds); None when there is
    nothing to compile (no pair, or trials that do not compile)."""
    import ray

    pairs = [(m, t) for m, t in pairs if t.compile_mode(bool(t.use_gpu)) != "off"]
    if not pairs:
        return None
    options = {"num_cpus": resources.get("cpu", 1), "max_calls": 1}
    if resources.get("gpu"):
        options["num_gpus"] = resources["gpu"]
    task = ray.remote(**options)(compile_first_steps)
    started = time.time()
    results = ray.get([task.remote(m, t, splits_ref) for m, t in pairs])
    warm = WarmUp(
        seconds=time.time() - started,
        configurations=tuple(tuple(m.channels) for m, _ in pairs),
        graphs_compiled=sum(r["graphs_compiled"] for r in results),
        graphs_cached=sum(r["graphs_cached"] for r in results),
        keys=tuple(key for r in results for key in r["graph_keys"].split()),
    )
    say(warm.line())
    return warm


def compile_first_steps(model: ModelConfig, train: TrainConfig, splits_ref: list) -> dict:
    """In a Ray task on the trials' node: the loop's first steps of this configuration on a
    few segments, compiled with every CPU of the node; the graphs it compiled and loaded."""
    import os

    import ray

    from raysearch.training.data import SplitArrays
    from raysearch.training.loop import Placement, fit
    from raysearch.training.runner import pick_device

    splits = ray.get(splits_ref[0])
    segments = WARMUP_SEGMENTS * train.batch_size
    small = {
        name: SplitArrays(s.spectrogram[:segments], s.label[:segments], s.track_id[:segments])
        for name, s in splits.items()
    }
    device, _ = pick_device(bool(train.use_gpu))
    # the whole node compiles (nothing else runs yet); the trials' own cap is their CPUs
    config = dataclasses.replace(
        train, epochs=1, patience=0, max_train_segments=0, compile_threads=os.cpu_count() or 1
    )
    reported: list[dict] = []
    fit(model, config, small, lambda metrics, _: reported.append(metrics), Placement(device))
    first = reported[0] if reported else {}
    return {
        "graphs_compiled": int(first.get("graphs_compiled") or 0),
        "graphs_cached": int(first.get("graphs_cached") or 0),
        "graph_keys": first.get("graph_keys") or "",
    }
