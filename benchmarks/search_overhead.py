"""Benchmark: what a search costs per trial beyond the training itself.

The same small configurations (the smoke space's narrow SE-CNN, ``--epochs`` epochs on
``--segments`` training segments, ratios from a fixed list) are trained three ways, one after
the other in one run, at concurrency 1:

* **plain**: a Python loop calling the project's training loop
  (:func:`raysearch.training.loop.fit`) in this process, no Ray;
* **search**: ``raysearch.search.run.run_search`` on a local Ray instance (each trial runs the
  loop in its own Tune trial process: what every search does now);
* **search, worker group**: the same search with every trial in a Ray Train worker group
  (``worker_group=True``: what every trial did before, kept as the baseline).

Each way runs with ``--few`` and ``--many`` trials; the marginal seconds per extra trial,
``(T(many) - T(few)) / (many - few)``, removes the fixed costs (reading the shards, starting a
search). The headline is the ratio search / plain of those marginal costs.

    python benchmarks/search_overhead.py                 # 2 and 6 trials, 2 epochs x 64 segments
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from machine import (  # first: puts the checkout on sys.path
    REPO,
    cpu_snapshot,
    load1,
    machine_facts,
    other_cpu_s,
    say,
    start_local_ray,
    uptime_line,
)

RATIOS = [2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0]


def space_for(trials: int, epochs: int, segments: int, name: str):
    """The smoke space's model and training, a grid over ``trials`` ratios, concurrency 1."""
    from raysearch.search.space import parse_space

    return parse_space(
        {
            "name": name,
            "trials": trials,
            "sampler": "grid",
            "concurrency": 1,
            "train": {
                "epochs": epochs,
                "batch_size": 16,
                "patience": 0,
                "max_train_segments": segments,
            },
            "model": {"channels": [8, 16, 32, 64, 32]},
            "resources": {"workers": 1, "cpu": 1, "gpu": 0},
            "params": {"ratio": {"type": "categorical", "choices": RATIOS[:trials]}},
        },
        name,
    )


def plain(shards: str, space) -> float:
    """Seconds to train every configuration of ``space`` in this process, no Ray."""
    import dataclasses

    import torch

    from raysearch.training.data import load_splits, sized_like
    from raysearch.training.loop import Placement, fit

    started = time.perf_counter()
    splits = load_splits(shards)
    for ratio in space.params[0].choices:
        model, train = space.configs_for({"ratio": ratio})
        train = dataclasses.replace(train, use_gpu=False)
        fit(sized_like(model, shards), train, splits, lambda m, c: None,
            Placement(torch.device("cpu")))  # fmt: skip
    return time.perf_counter() - started


def search(shards: str, space, worker_group: bool) -> float:
    from raysearch.search.run import run_search

    storage = tempfile.mkdtemp(prefix="overhead-storage-")
    results = tempfile.mkdtemp(prefix="overhead-results-")
    started = time.perf_counter()
    run_search(space, shards, storage, results, verbose=0, use_gpu=False,
               worker_group=worker_group)  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--few", type=int, default=2)
    parser.add_argument("--many", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--segments", type=int, default=64)
    parser.add_argument(
        "--ways", default="plain,search,worker-group", help="which ways to run (comma-separated)"
    )
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    from raysearch.data import synth
    from raysearch.data.pipeline import prepare

    facts = machine_facts(("ray", "torch"), REPO)
    say(f"{facts['cores']} cores, ray {facts['versions']['ray']}; {uptime_line()}")
    init_s = start_local_ray(2, REPO)
    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    root = synth.generate(work / "synthetic", clips_per_genre=10, duration=6.0, seed=0)
    shards = prepare(str(root), str(work / "shards")).out
    say(f"ray.init {init_s:.1f} s; shards ready")
    ways = [w for w in args.ways.split(",") if w]
    seconds: dict[str, dict[int, float]] = {w: {} for w in ways}
    before = cpu_snapshot()
    for n in (args.few, args.many):
        for way in ways:
            space = space_for(n, args.epochs, args.segments, f"overhead-{way}-{n}")
            if way == "plain":
                seconds[way][n] = plain(shards, space)
            else:
                seconds[way][n] = search(shards, space, worker_group=way == "worker-group")
            say(f"{way}, {n} trials: {seconds[way][n]:.1f} s (load {load1()})")
    other = other_cpu_s(before, cpu_snapshot())
    marginal = {
        w: (s[args.many] - s[args.few]) / (args.many - args.few) for w, s in seconds.items()
    }
    print()
    print(
        f"| way | {args.few} trials (s) | {args.many} trials (s) | s per extra trial | vs plain |"
    )
    print("|---|---:|---:|---:|---:|")
    for way in ways:
        ratio = marginal[way] / marginal["plain"] if "plain" in marginal else float("nan")
        print(
            f"| {way} | {seconds[way][args.few]:.1f} | {seconds[way][args.many]:.1f} | "
            f"{marginal[way]:.2f} | {ratio:.2f}x |"
        )
    print(f"\nother processes' CPU during the run: {other} s; {uptime_line()}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"seconds": seconds, "marginal": marginal, "machine": facts}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
