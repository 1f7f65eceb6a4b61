"""Benchmark: ``--compile`` in a process that trains one network after another (a reused Tune
actor), side by side in one run.

The networks are SE-CNNs of one search space's kind: the same convolutions, a different SE ratio
each, so the SE layers differ in width (``--ratios``). Each network is compiled with
:func:`raysearch.training.loop.compile_model`, then takes one optimiser step (the compile
happens there) and ``--steps`` more (timed). Each side runs in a process of its own, so that
no side gains from kernels an earlier side loaded:

* **whole-cold**: ``share_se=False``: one graph per network, the SE layers in it, so
  every ratio is a new graph; an empty Inductor cache folder.
* **shared-cold**: ``share_se=True`` (what the loop does): the SE layers run eagerly,
  so every ratio gives the same graphs; an empty cache folder. The first network compiles,
  the others find its graphs in the cache.
* **shared-warm**: the same in a new process, on the cache the previous side filled:
  what a trial costs when a network of its channels was compiled before on the machine.
* **padded-cold**: the SE bottlenecks padded to C units (what a compiled trial builds,
  :class:`raysearch.model.SEBlock`): one whole graph, the same for every ratio; an empty
  cache folder. The first network compiles, the others find its graphs in the cache.
* **padded-processes**: the same, but every network in a process of its own, as every
  compiled trial of a search runs, on an empty cache folder: the first process compiles, the
  others load. Its ``startup_s`` is a trial's start-up: process start (imports included) to
  the end of the first step.
* **whole-processes**: the same with unpadded SE blocks (what a compiled trial built before):
  every ratio its own graph, so every process compiles.

Per network it prints the first step's seconds (the compile), the start-up from the process's
start, the steady step time, and whether Dynamo compiled a graph for it
(``torch._dynamo.utils.counters``) and how many graphs Inductor's cache served.

    python benchmarks/compile_reuse.py                     # CPU: 12 networks, input 64 x 32
    python benchmarks/compile_reuse.py --shape 513,129 --batch 32 --device cuda --ratios 16,8,4 \\
        --sides whole-cold,shared-cold                                       # a GPU
    python benchmarks/compile_reuse.py --sides padded-processes --ratios 16,8,4,31.43 \\
        --shape 513,129 --batch 32 --steps 5       # trials' start-up, one compile per channels
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATIOS = "16,8,4,2,32,64,3,5,6,7,9,11"  # 12 distinct SE widths of the default channels
# name: (share_se, pad_se, cache folder, a process per network); a side on a folder another
# side used before it finds that side's graphs
SIDES = {
    "whole-cold": (False, False, "a", False),
    "shared-cold": (True, False, "b", False),
    "shared-warm": (True, False, "b", False),
    "padded-cold": (False, True, "c", False),
    "padded-processes": (False, True, "d", True),
    "whole-processes": (False, False, "e", True),
}


def one_network(
    ratio: float, share_se: bool, pad_se: bool, shape, batch: int, steps: int, device
) -> dict:
    import psutil
    import torch
    from torch._dynamo.utils import counters

    from raysearch.model import SECNN, ModelConfig
    from raysearch.training.loop import compile_model, train_step

    torch.manual_seed(0)
    model = SECNN(ModelConfig(input_shape=shape, ratio=ratio), pad_se=pad_se).to(device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), fused=on_gpu or None)
    x = (torch.randn(batch, *shape, device=device) * 20 - 40).half()
    y = torch.randint(0, 10, (batch,), device=device)
    graphs_before = counters["stats"]["unique_graphs"]
    hits_before = counters["inductor"]["fxgraph_cache_hit"]
    net = compile_model(model, "default", share_se=share_se)

    def step():
        train_step(net, optimizer, x, y, on_gpu, on_gpu)
        if on_gpu:
            torch.cuda.synchronize()

    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    startup = time.time() - psutil.Process().create_time()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {
        "ratio": ratio,
        "first_step_s": round(first, 2),
        "startup_s": round(startup, 2),  # from this process's start: a trial's start-up
        "step_ms": round((time.perf_counter() - started) / steps * 1000, 1),
        "compiled": counters["stats"]["unique_graphs"] > graphs_before,
        "cache_hits": counters["inductor"]["fxgraph_cache_hit"] - hits_before,
    }


def run_side(args) -> int:
    """One side, in this process: print one JSON line per network."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    share_se, pad_se = SIDES[args.side][:2]
    for ratio in args.ratios:
        row = one_network(
            ratio, share_se, pad_se, args.shape, args.batch, args.steps, torch.device(args.device)
        )
        print("ROW " + json.dumps(row), flush=True)
    return 0


def side(name: str, cache: str, argv: list[str], ratios: list[float]) -> dict:
    """Run side ``name`` in a new process (one per network for a side that says so) with
    Inductor's cache in ``cache``."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    started = time.perf_counter()
    runs = [[]] if not SIDES[name][3] else [["--ratios", repr(r)] for r in ratios]
    rows = []
    for extra in runs:
        proc = subprocess.run(
            [sys.executable, __file__, *argv, *extra, "--side", name],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(f"side {name!r} failed:\n{proc.stderr[-3000:]}")
        lines = proc.stdout.splitlines()
        for row in [json.loads(line[4:]) for line in lines if line.startswith("ROW ")]:
            print(f"{name}: {row}", flush=True)  # each process's rows as it ends
            rows.append(row)
    return {
        "side": name,
        "networks": rows,
        "process_s": round(time.perf_counter() - started, 1),
        "compiled": sum(r["compiled"] for r in rows),
        "compile_s_total": round(sum(r["first_step_s"] for r in rows), 1),
        "compile_s_after_first": round(sum(r["first_step_s"] for r in rows[1:]), 1),
        "step_ms_mean": round(sum(r["step_ms"] for r in rows) / len(rows), 1),
        "startup_s_median_after_first": _median([r["startup_s"] for r in rows[1:]]),
    }


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--ratios", default=RATIOS, help="one network per SE ratio")
    parser.add_argument("--shape", default="64,32", help="input bins,frames")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps after the first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write compile_reuse.json here")
    parser.add_argument("--sides", default=",".join(SIDES), help="which sides, in this order")
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)  # a side's process
    args = parser.parse_args(argv)
    raw = list(sys.argv[1:] if argv is None else argv)
    args.shape = tuple(int(v) for v in args.shape.split(","))
    args.ratios = [float(v) for v in args.ratios.split(",")]
    if args.side:
        return run_side(args)

    import torch

    caches = {key: tempfile.mkdtemp(prefix=f"inductor-{key}-") for key in "abcde"}
    results = {
        "torch": torch.__version__,
        "device": args.device,
        "command": " ".join(["python benchmarks/compile_reuse.py", *raw]),
    }
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name(0)
    names = args.sides.split(",")
    unknown = [name for name in names if name not in SIDES]
    if unknown:
        parser.error(f"--sides: unknown {unknown}; known: {', '.join(SIDES)}")
    # a process-per-network side passes each process one ratio: the others' --ratios go
    shared = [
        a for i, a in enumerate(raw) if a != "--ratios" and (i == 0 or raw[i - 1] != "--ratios")
    ]
    sides = [
        side(name, caches[SIDES[name][2]], shared if SIDES[name][3] else raw, args.ratios)
        for name in names
    ]
    results["sides"] = sides
    n = len(args.ratios)
    print(f"\n{n} networks, one process per side, torch {torch.__version__}, {args.device}")
    print(
        "| side | networks compiled | first step s, all (first network) | start-up s from "
        "the process's start, each network | median start-up after the first | mean step ms |"
    )
    print("|---|---:|---:|---|---:|---:|")
    for s in sides:
        first = s["networks"][0]["first_step_s"]
        startups = [r["startup_s"] for r in s["networks"]]
        print(
            f"| {s['side']} | {s['compiled']} of {n} | {s['compile_s_total']} ({first}) "
            f"| {startups} | {s['startup_s_median_after_first']} | {s['step_ms_mean']} |"
        )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "compile_reuse.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
