"""What keeping the predictions and building the ensemble cost at GTZAN's size, part by part:
a completed trial's predictions.npz (1,900 validation + 5,700 test segments x 10 classes, the
track split of 1,000 clips of 19 segments: 100 + 300 tracks), its size and the time to make
and write it; reading it back; the ensemble selection over a 50-trial search's networks (25
rounds); and, for scale, the report network's model.pt and its CPU forward times (what
raysearch.results.cost measures once per network shape). ``--thread-rounds N`` also times the
README's main command's network (r = 16, half width, 32 x 129 log-mel segments) N times on
one torch thread and on two, interleaved: how steady each count's figure is on this machine.

    python benchmarks/ensemble_cost.py [--candidates 50] [--repeats 5] [--thread-rounds 0]
        [--json PATH]

No Ray. Random probabilities (a Dirichlet draw per segment) stand in for a network's: the file
is stored uncompressed, so its size does not depend on the values, and neither do the times.
Prints the machine, every part with its 1-minute load and the CPU seconds other processes took
meanwhile, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from machine import REPO, cpu_snapshot, load1, machine_facts, other_cpu_s, say, uptime_line

GTZAN = {"val": 100, "test": 300}  # tracks of a 60 / 10 / 30 split of 1,000 clips
SEGMENTS_PER_TRACK = 19
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock")  # fmt: skip


def measured(fn, repeats: int) -> tuple[object, dict]:
    """``fn()``'s last result, the median of ``repeats`` runs' seconds, load, other CPU s."""
    before, load = cpu_snapshot(), load1()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    timing = {"s": statistics.median(seconds), "runs": repeats, "load_before": load}
    return result, timing | {
        "load_after": load1(),
        "other_cpu_s": other_cpu_s(before, cpu_snapshot()),
    }


def split_of(name: str, rng) -> tuple:
    """Probabilities (N, 10) float32, labels (N,) and track ids (N,) of one GTZAN-sized split."""
    import numpy as np

    tracks = [f"{GENRES[i % 10]}.{i:05d}" for i in range(GTZAN[name])]
    track_ids = np.repeat(np.array(tracks, dtype=object), SEGMENTS_PER_TRACK)
    labels = np.repeat(np.arange(GTZAN[name]) % 10, SEGMENTS_PER_TRACK)
    probs = rng.dirichlet(np.full(10, 0.3), size=len(labels)).astype(np.float32)
    return probs, labels, track_ids


def main() -> None:
    import numpy as np
    import torch

    from raysearch.model import SECNN, ModelConfig, count_parameters
    from raysearch.results import cost
    from raysearch.results.cost import time_forward
    from raysearch.results.ensemble import DEFAULT_ROUNDS, select
    from raysearch.training.checkpoint import save_checkpoint
    from raysearch.training.predictions import (
        PREDICTIONS_FILE,
        SplitPredictions,
        load_predictions,
        save_predictions,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=50, help="networks to select from")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each part (median)")
    parser.add_argument(
        "--thread-rounds", type=int, default=0, help="rounds of the one / two thread timing"
    )
    parser.add_argument("--json", default=None, help="also write every number here")
    args = parser.parse_args()

    facts = machine_facts(("numpy", "torch"), REPO)
    say(f"machine: {json.dumps(facts)}; torch threads: {torch.get_num_threads()}")
    say(f"uptime: {uptime_line()}")
    rng = np.random.default_rng(0)
    raw = {name: split_of(name, rng) for name in GTZAN}
    runs, folder = [], tempfile.mkdtemp(prefix="ensemble-cost-")

    def run(label: str, fn, repeats: int = args.repeats):
        result, timing = measured(fn, repeats)
        runs.append({"run": label, **timing})
        if isinstance(result, list):
            runs[-1]["run"] += f": {result}"
        say(f"{runs[-1]}")
        return result

    splits = run(
        "float16 + track index of val and test (SplitPredictions.of)",
        lambda: {name: SplitPredictions.of(*raw[name]) for name in GTZAN},
    )
    location = run(
        "write predictions.npz (np.savez, local disk, no fsync)",
        lambda: save_predictions(folder, splits, GENRES),
    )
    size = os.path.getsize(location)
    run("read predictions.npz back (load_predictions)", lambda: load_predictions(folder))
    val = splits["val"]
    library = [rng.dirichlet(np.full(10, 0.3), size=len(val.label)) for _ in range(args.candidates)]
    chosen = run(
        f"ensemble selection: {args.candidates} networks, {DEFAULT_ROUNDS} rounds, "
        f"{len(val.label)} validation segments",
        lambda: select(library, val.label, val.track, 0, DEFAULT_ROUNDS),
        repeats=max(1, args.repeats // 2),
    )
    report = ModelConfig()  # the report's network on 513-bin STFT segments
    network = SECNN(report)
    checkpoint = save_checkpoint(network.state_dict(), report, {}, {}, 1, {}, folder=folder)
    model_size = os.path.getsize(os.path.join(checkpoint, "model.pt"))
    b1 = run("CPU forward of the report network, batch 1 (ms per segment)",
             lambda: time_forward(report, 1), repeats=1)  # fmt: skip
    b64 = run("CPU forward of the report network, batch 64 (ms per segment)",
              lambda: time_forward(report, 64), repeats=1)  # fmt: skip
    profile = ModelConfig(channels=(16, 32, 64, 128, 64), input_shape=(32, 129))
    for round_ in range(args.thread_rounds):
        for threads in (1, 2) if round_ % 2 == 0 else (2, 1):
            cost.TIMING_THREADS = threads  # what time_forward sets for its passes
            label = f"main command's network, {threads} thread(s), batch 1 / 64 (ms a segment)"
            run(label, lambda: [round(time_forward(profile, b), 3) for b in (1, 64)], 1)
    cost.TIMING_THREADS = 1
    say(f"uptime: {uptime_line()}")
    print(
        f"\n{PREDICTIONS_FILE} at GTZAN's size: {size:,} bytes ({size / 1e6:.3f} MB) for "
        f"{len(splits['val'].label)} + {len(splits['test'].label)} segments x 10 classes; "
        f"model.pt of the report network ({count_parameters(network):,} parameters): "
        f"{model_size:,} bytes. Ensemble kept {chosen.kept} of {DEFAULT_ROUNDS} rounds. Report "
        f"network on this CPU: {b1:.2f} ms / segment at batch 1, {b64:.2f} at batch 64."
    )
    print("\n| part | s (median) | runs | load before / after | other CPU s |")
    print("|---|---:|---:|---|---:|")
    for part in runs:
        print(
            f"| {part['run']} | {part['s']:.4f} | {part['runs']} | {part['load_before']} / "
            f"{part['load_after']} | {part['other_cpu_s']} |"
        )
    if args.json:
        numbers = {"predictions_bytes": size, "model_pt_bytes": model_size, "runs": runs}
        with open(args.json, "w") as f:
            json.dump({"machine": facts, **numbers}, f, indent=1)


if __name__ == "__main__":
    main()
