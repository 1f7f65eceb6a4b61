"""The classical baseline's cost on a shard set, part by part, and its BLAS thread count side by
side: reading + features of each split (Parquet batches, as ``raysearch baseline`` reads them),
then the logistic-regression fits of every C of the grid with one BLAS thread (what
``raysearch.baseline.shards.compute_baseline`` uses) and with BLAS's default count, interleaved.

    python benchmarks/baseline_bench.py --shards SHARDS [--repeats 2] [--json PATH]

No Ray. Prints the machine, every run with its 1-minute load and the CPU seconds other
processes took meanwhile, then a table.
"""

from __future__ import annotations

import argparse
import json
import time

from machine import REPO, cpu_snapshot, load1, machine_facts, other_cpu_s, say, uptime_line


def measured(fn) -> tuple[object, dict]:
    """``fn()``'s result, and its seconds, load before and after, other processes' CPU s."""
    before, load = cpu_snapshot(), load1()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    timing = {"s": seconds, "load_before": load, "load_after": load1()}
    return result, timing | {"other_cpu_s": other_cpu_s(before, cpu_snapshot())}


def main() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from raysearch.baseline.classifier import ClassifierConfig, choose_c
    from raysearch.baseline.shards import DEFAULT, spectrogram_config, split_batches, split_features
    from raysearch.data.pipeline import read_manifest
    from raysearch.data.split import SPLITS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", required=True, help="shard folder (raysearch prepare)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the fits (default 2)")
    parser.add_argument("--json", default=None, help="also write every number here")
    args = parser.parse_args()

    facts = machine_facts(("numpy", "scipy", "sklearn", "pyarrow"), REPO)
    default_threads = max(i["num_threads"] for i in threadpool_info()) if threadpool_info() else 1
    say(f"machine: {json.dumps(facts)}; BLAS/OpenMP threads by default: {default_threads}")
    say(f"uptime: {uptime_line()}")
    manifest = read_manifest(args.shards)
    spectrogram, shape = spectrogram_config(manifest), tuple(manifest["shape"])
    runs, features = [], {}
    with threadpool_limits(limits=1):
        for split in SPLITS:
            features[split], timing = measured(
                lambda split=split: split_features(
                    split_batches(args.shards, split, shape), spectrogram, DEFAULT
                )
            )
            runs.append({"run": f"read + features: {split} ({len(features[split])} segments)"})
            runs[-1].update(timing)
            say(f"{runs[-1]}")
    config = ClassifierConfig()
    for round_ in range(args.repeats):
        order = (1, default_threads) if round_ % 2 == 0 else (default_threads, 1)
        for threads in order:
            with threadpool_limits(limits=threads):
                _, timing = measured(lambda: choose_c(features["train"], features["val"], config))
            runs.append({"run": f"fits of {len(config.c_grid)} C, {threads} BLAS thread(s)"})
            runs[-1].update(timing)
            say(f"{runs[-1]}")
    say(f"uptime: {uptime_line()}")
    print("\n| run | s | load before / after | other CPU s |\n|---|---:|---|---:|")
    for run in runs:
        print(
            f"| {run['run']} | {run['s']:.2f} | {run['load_before']} / {run['load_after']} "
            f"| {run['other_cpu_s']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": facts, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
