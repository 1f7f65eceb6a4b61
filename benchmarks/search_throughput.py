"""How fast a finished search trained, from its trials' own epoch reports: the aggregate
training throughput over time (the sum of the rates of the trials training at each moment),
and what it was while the GPU held K trials or more.

Each epoch a trial trained itself (not one a twin replayed) is an interval ``[end - epoch_s,
end]`` during which the trial trained ``train_segments`` at an even rate (validation included
in ``epoch_s``, so the rate is the wall-clock one). Summing the intervals on a 0.5 s grid gives
the aggregate at every moment; its median over the moments with at least K trials training is
the steady figure a side of ``gpu_bench.py`` measures, read from a real search instead. Report
times are Tune's whole-second timestamps, so the intervals are good to about a second.

    python benchmarks/search_throughput.py EXPERIMENT        # e.g. ~/ray_results/raysearch/ratio
    python benchmarks/search_throughput.py results/gpu-h200-synthetic/experiment/trial_epochs.csv
    python benchmarks/search_throughput.py EXPERIMENT --csv trial_epochs.csv   # the rows, kept

Reads the trials' ``result.json`` files (or a ``trial_epochs.csv`` this script wrote); no Ray.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

COLUMNS = (
    "trial_id",
    "epoch",
    "timestamp",
    "epoch_s",
    "train_segments",
    "segments_per_s",
    "startup_s",
    "graphs_compiled",
    "reused_from",
    "val_acc",
)


def epoch_rows(source: Path) -> list[dict]:
    """Every reported epoch of an experiment folder (or of a CSV of them)."""
    if source.suffix == ".csv":
        with open(source) as f:
            return [dict(row) for row in csv.DictReader(f)]
    rows = []
    for path in sorted(source.glob("*/result.json")):
        for line in path.read_text().splitlines():
            report = json.loads(line)
            rows.append({column: report.get(column, "") for column in COLUMNS})
    return rows


def trained(rows: list[dict]) -> list[tuple[float, float, float]]:
    """(start, end, segments/s) of every epoch a trial trained itself."""
    intervals = []
    for row in rows:
        if row["reused_from"] not in ("", None) or not row["epoch_s"]:
            continue
        end, seconds = float(row["timestamp"]), float(row["epoch_s"])
        intervals.append((end - seconds, end, float(row["train_segments"]) / seconds))
    return intervals


def aggregate(intervals, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(segments/s of all trials together, trials training) at every ``step`` seconds."""
    start = min(s for s, _, _ in intervals)
    times = np.arange(start, max(e for _, e, _ in intervals), step)
    rate, active = np.zeros_like(times), np.zeros_like(times)
    for s, e, r in intervals:
        inside = (times >= s) & (times < e)
        rate[inside] += r
        active[inside] += 1
    return rate, active


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="experiment folder, or a trial_epochs.csv")
    parser.add_argument("--csv", type=Path, default=None, help="also write the epoch rows here")
    args = parser.parse_args(argv)
    rows = epoch_rows(args.source)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    intervals = trained(rows)
    if not intervals:
        print(f"{args.source}: no trained epochs")
        return 1
    rate, active = aggregate(intervals)
    step = 0.5
    print(f"{len(intervals)} trained epochs over {len(rate) * step:.0f} s")
    print("| trials training at once | seconds | aggregate segments/s, median | p90 |")
    print("|---:|---:|---:|---:|")
    for k in sorted({int(a) for a in active if a > 0}, reverse=True):
        held = active >= k
        if k in (1, 4, 8, 12, 16):
            print(
                f"| {k} or more | {held.sum() * step:.0f} | {np.median(rate[held]):,.0f} | "
                f"{np.percentile(rate[held], 90):,.0f} |"
            )
    print(f"mean over the whole span: {rate.mean():,.0f} segments/s")
    later = [
        float(r["segments_per_s"]) for r in rows if not r["reused_from"] and int(r["epoch"]) > 1
    ]
    if later:
        print(f"one trial's train loop (epochs after its first): median {np.median(later):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
