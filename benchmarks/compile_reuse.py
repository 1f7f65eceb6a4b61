"""Benchmark: ``--compile`` in a process that trains one network after another (a reused Tune
actor), side by side in one run.

The networks are SE-CNNs of one search space's kind: the same convolutions, a different SE ratio
each, so the SE layers differ in width (``--ratios``). Each network is compiled, then takes one
optimiser step (the compile happens there) and ``--steps`` more (timed). Three sides, in this
order, in one process:

* **reset, cold cache**: :func:`raysearch.training.loop.compile_model` (clears Dynamo first),
  with an empty Inductor cache folder: every network compiles from nothing.
* **reset, warm cache**: the same again, on the cache the previous side filled: what a trial
  costs when its network was compiled before (by any process on the machine).
* **plain**: ``torch.compile(model)`` per network, as the loop did before, in a fresh cache
  folder. Dynamo keeps one entry per network shape for ``SECNN.forward``; past
  ``recompile_limit`` (8) it runs the function uncompiled, without an error. Its compile
  seconds are not cold (kernels this process built stay loaded); what it shows is which
  networks were compiled at all.

Per network it prints the first step's seconds (the compile), the steady step time and whether
Dynamo compiled a graph for it (``torch._dynamo.utils.counters``).

    python benchmarks/compile_reuse.py                     # CPU: 12 networks, input 64 x 32
    python benchmarks/compile_reuse.py --shape 513,129 --batch 32 --device cuda   # a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RATIOS = "16,8,4,2,32,64,3,5,6,7,9,11"  # 12 distinct SE widths of the default channels


def one_network(ratio: float, compile_fn, shape, batch: int, steps: int, device) -> dict:
    import torch
    from torch._dynamo.utils import counters

    from raysearch.model import SECNN, ModelConfig
    from raysearch.training.loop import train_step

    torch.manual_seed(0)
    model = SECNN(ModelConfig(input_shape=shape, ratio=ratio)).to(device)
    optimizer = torch.optim.Adam(model.parameters())
    x = (torch.randn(batch, *shape, device=device) * 20 - 40).half()
    y = torch.randint(0, 10, (batch,), device=device)
    graphs_before = counters["stats"]["unique_graphs"]
    net = compile_fn(model)
    on_gpu = device.type == "cuda"

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


def side(name: str, compile_fn, ratios, args, device) -> dict:
    import torch

    torch._dynamo.reset()
    rows = []
    for ratio in ratios:
        row = one_network(ratio, compile_fn, args.shape, args.batch, args.steps, device)
        rows.append(row)
        print(f"{name}: {row}", flush=True)
    return {
        "side": name,
        "networks": rows,
        "compiled": sum(r["compiled"] for r in rows),
        "compile_s_total": round(sum(r["first_step_s"] for r in rows), 1),
        "step_ms_mean": round(sum(r["step_ms"] for r in rows) / len(rows), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--ratios", default=RATIOS, help="one network per SE ratio")
    parser.add_argument("--shape", default="64,32", help="input bins,frames")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write compile_reuse.json here")
    args = parser.parse_args(argv)
    args.shape = tuple(int(v) for v in args.shape.split(","))
    ratios = [float(v) for v in args.ratios.split(",")]

    # empty Inductor cache folders, set before torch reads the variable
    cache, plain_cache = tempfile.mkdtemp(prefix="inductor-"), tempfile.mkdtemp(prefix="inductor-")
    import torch

    from raysearch.training.loop import compile_model

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    limit = torch._dynamo.config.recompile_limit
    results = {"torch": torch.__version__, "device": args.device, "recompile_limit": limit}
    results["command"] = " ".join(["python benchmarks/compile_reuse.py", *sys.argv[1:]])
    sides = []
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    reset = lambda model: compile_model(model, "default")  # noqa: E731
    sides.append(side("reset, cold cache", reset, ratios, args, device))
    sides.append(side("reset, warm cache", reset, ratios, args, device))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = plain_cache
    sides.append(side("plain", torch.compile, ratios, args, device))
    results["sides"] = sides
    print(f"\n{len(ratios)} networks, one process, torch {torch.__version__}, {args.device}")
    print("| side | networks compiled | compile s (sum of first steps) | mean step ms |")
    print("|---|---:|---:|---:|")
    for s in sides:
        print(
            f"| {s['side']} | {s['compiled']} of {len(ratios)} | {s['compile_s_total']} "
            f"| {s['step_ms_mean']} |"
        )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "compile_reuse.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
