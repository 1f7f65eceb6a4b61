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

Per network it prints the first step's seconds (the compile) and the steady step time, and
whether Dynamo compiled a graph for it (``torch._dynamo.utils.counters``).

    python benchmarks/compile_reuse.py                     # CPU: 12 networks, input 64 x 32
    python benchmarks/compile_reuse.py --shape 513,129 --batch 32 --device cuda --ratios 16,8,4 \\
        --sides whole-cold,shared-cold                                       # a GPU
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
SIDES = {  # name: (share_se, cache folder: "a" or "b"; a side on "b" after another is warm)
    "whole-cold": (False, "a"),
    "shared-cold": (True, "b"),
    "shared-warm": (True, "b"),
}


def one_network(ratio: float, share_se: bool, shape, batch: int, steps: int, device) -> dict:
    import torch
    from torch._dynamo.utils import counters

    from raysearch.model import SECNN, ModelConfig
    from raysearch.training.loop import compile_model, train_step

    torch.manual_seed(0)
    model = SECNN(ModelConfig(input_shape=shape, ratio=ratio)).to(device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), fused=on_gpu or None)
    x = (torch.randn(batch, *shape, device=device) * 20 - 40).half()
    y = torch.randint(0, 10, (batch,), device=device)
    graphs_before = counters["stats"]["unique_graphs"]
    net = compile_model(model, "default", share_se=share_se)

    def step():
        train_step(net, optimizer, x, y, on_gpu, on_gpu)
        if on_gpu:
            torch.cuda.synchronize()

    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {
        "ratio": ratio,
        "first_step_s": round(first, 2),
        "step_ms": round((time.perf_counter() - started) / steps * 1000, 1),
        "compiled": counters["stats"]["unique_graphs"] > graphs_before,
    }


def run_side(args) -> int:
    """One side, in this process: print one JSON line per network."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    share_se = SIDES[args.side][0]
    for ratio in args.ratios:
        row = one_network(
            ratio, share_se, args.shape, args.batch, args.steps, torch.device(args.device)
        )
        print("ROW " + json.dumps(row), flush=True)
    return 0


def side(name: str, cache: str, argv: list[str]) -> dict:
    """Run side ``name`` in a new process with Inductor's cache in ``cache``."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, *argv, "--side", name],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"side {name!r} failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    for row in rows:
        print(f"{name}: {row}", flush=True)
    return {
        "side": name,
        "networks": rows,
        "process_s": round(time.perf_counter() - started, 1),
        "compiled": sum(r["compiled"] for r in rows),
        "compile_s_total": round(sum(r["first_step_s"] for r in rows), 1),
        "compile_s_after_first": round(sum(r["first_step_s"] for r in rows[1:]), 1),
        "step_ms_mean": round(sum(r["step_ms"] for r in rows) / len(rows), 1),
    }


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

    caches = {key: tempfile.mkdtemp(prefix=f"inductor-{key}-") for key in ("a", "b")}
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
    sides = [side(name, caches[SIDES[name][1]], raw) for name in names]
    results["sides"] = sides
    n = len(args.ratios)
    print(f"\n{n} networks, one process per side, torch {torch.__version__}, {args.device}")
    print("| side | networks compiled | compile s, all (first network) | mean step ms |")
    print("|---|---:|---:|---:|")
    for s in sides:
        first = s["networks"][0]["first_step_s"]
        print(
            f"| {s['side']} | {s['compiled']} of {n} | {s['compile_s_total']} ({first}) "
            f"| {s['step_ms_mean']} |"
        )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "compile_reuse.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
