"""Benchmark: one training step of the default SE-CNN, variant against variant, with the kernel
table of each profiled variant (eager and compiled side by side).

The step is the project's own (:func:`raysearch.training.loop.train_step`) on random input of
the report's shape (``--shape``, 513 x 129 STFT bins x frames; ``--batch`` 32), so no data
preparation and no Ray are needed: it isolates what the device does per step. A variant is
``MODE:KERNELS`` (``MODE`` eager or a torch.compile mode; ``KERNELS`` how each block's conv →
ReLU → max-pool runs, :data:`raysearch.ops.KERNELS`) or one of the named earlier variants
(layouts, precision, batch 128). Compiled variants build the network the way a compiled trial
does (SE bottlenecks padded, :class:`raysearch.model.SEBlock`). Each variant runs ``--warmup``
steps (the compile happens there: ``warmup_s``), then ``--steps`` timed steps (synchronised at
both ends); segments/s = steps x batch / seconds. The profiler's table (top ``--rows`` kernels
by device time, over 10 more steps) is kept for the variants in ``--profile``, and the device
time per step (the sum of the kernels' times) beside the wall time says how busy one step
keeps the device.

    python benchmarks/gpu_step_profile.py --out OUT                          # a GPU machine
    python benchmarks/gpu_step_profile.py --device cpu --shape 65,33 --batch 4 --steps 3 \\
        --warmup 2 --variants eager:aten,default:select --out /tmp/step  # a CPU dry run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from machine import REPO, machine_facts  # first: puts the checkout on sys.path

# named variants of earlier sessions: (batch, amp, channels_last, mode, kernels); a batch of
# None takes --batch
NAMED = {
    "bf16-nchw": (None, True, False, "off", "aten"),
    "fp32-nchw": (None, False, False, "off", "aten"),
    "fp32-channels-last": (None, False, True, "off", "aten"),
    "bf16-nchw-b128": (128, True, False, "off", "aten"),
    "bf16-channels-last-b128": (128, True, True, "off", "aten"),
}
DEFAULT_VARIANTS = (
    "eager:aten,default:aten,default:select,default:select-conv1,default:triton-conv1,eager:select"
)
DEFAULT_PROFILE = "eager:aten,default:aten,default:select,default:triton-conv1"


def parse_variant(name: str, batch: int) -> tuple[int, bool, bool, str, str]:
    """(batch, amp, channels_last, compile mode, kernels) of a variant's name."""
    from raysearch.ops import KERNELS

    if name in NAMED:
        size, amp, channels_last, mode, kernels = NAMED[name]
        return size or batch, amp, channels_last, mode, kernels
    mode, _, kernels = name.partition(":")
    if (
        mode not in ("eager", "default", "reduce-overhead", "max-autotune")
        or kernels not in KERNELS
    ):
        raise SystemExit(
            f"--variants: {name!r} is not MODE:KERNELS (MODE eager or a compile mode, KERNELS "
            f"one of {', '.join(KERNELS)}) nor one of {', '.join(NAMED)}"
        )
    return batch, True, True, "off" if mode == "eager" else mode, kernels


def run_variant(name: str, args, device, profile: bool) -> dict:
    import torch

    from raysearch.model import SECNN, ModelConfig
    from raysearch.training.loop import compile_model, train_step

    batch, amp, channels_last, mode, kernels = parse_variant(name, args.batch)
    on_gpu = device.type == "cuda"
    amp, channels_last = amp and on_gpu, channels_last and on_gpu  # as the loop does
    torch.manual_seed(0)
    model = SECNN(ModelConfig(input_shape=args.shape), kernels, pad_se=mode != "off").to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=on_gpu or None)
    stepped = compile_model(model, mode) if mode != "off" else model
    x = (torch.randn(batch * 8, *args.shape, device=device) * 20 - 40).half()
    y = torch.randint(0, 10, (batch * 8,), device=device)
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)]

    def steps(count: int) -> float:
        started = time.perf_counter()
        for i in range(count):
            train_step(stepped, optimizer, *batches[i % 8], amp, channels_last)
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    warm_s = steps(args.warmup)
    seconds = steps(args.steps)
    result = {
        "batch": batch,
        "amp": amp,
        "channels_last": channels_last,
        "compile": mode,
        "kernels": kernels,
        "segments_per_s": round(args.steps * batch / seconds, 1),
        "ms_per_step": round(seconds / args.steps * 1000, 3),
        "warmup_s": round(warm_s, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
    }
    if profile:
        result.update(kernel_table(stepped, optimizer, batches, amp, channels_last, args, device))
    return result


def kernel_table(stepped, optimizer, batches, amp, channels_last, args, device) -> dict:
    """The profiler's top kernels over 10 steps, and the device time per step."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from raysearch.training.loop import train_step

    on_gpu = device.type == "cuda"
    activity = ProfilerActivity.CUDA if on_gpu else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for i in range(10):
            train_step(stepped, optimizer, *batches[i % 8], amp, channels_last)
        if on_gpu:
            torch.cuda.synchronize()
    averages = prof.key_averages()
    key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    device_us = sum(getattr(e, key) for e in averages) / 10  # self times: each counted once
    return {
        "device_ms_per_step": round(device_us / 1000, 3),
        "top_kernels": averages.table(sort_by=key, row_limit=args.rows, max_name_column_width=90),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", default="gpu-step-out", help="folder for gpu_step_profile.json")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="MODE:KERNELS or a name")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="variants whose kernels to list")
    parser.add_argument("--shape", default="513,129", help="input bins,frames")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=15, help="steps before timing (compile)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps")
    parser.add_argument("--rows", type=int, default=15, help="kernels per table")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0,
        help="skip a variant that the time left would not hold (0: no limit)",
    )
    parser.add_argument(
        "--no-json",
        dest="json",
        action="store_false",
        help="write the Markdown only (its tables hold every figure)",
    )
    args = parser.parse_args(argv)
    args.shape = tuple(int(v) for v in args.shape.split(","))
    import torch

    began = time.time()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python benchmarks/gpu_step_profile.py", *(argv or sys.argv[1:])]),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (dry run)",
        "machine": machine_facts(("torch",), REPO),
        "variants": {},
    }
    profiled = set(args.profile.split(","))
    (out / "gpu_step_profile.md").write_text(markdown(report))  # there even if cut off at once
    longest = 0.0  # the slowest variant so far: one that would not fit is not started
    for name in [v for v in args.variants.split(",") if v]:
        left = args.budget_s - (time.time() - began) if args.budget_s else float("inf")
        if left < longest:
            report["variants"][name] = {"skipped": f"--budget-s ({left:.0f} s left)"}
        else:
            started = time.time()
            try:
                result = run_variant(name, args, device, name in profiled)
            except Exception as exc:  # noqa: BLE001 - report and go on
                result = {"error": repr(exc)[:500]}
            longest = max(longest, time.time() - started)
            report["variants"][name] = result
            print(name, {k: v for k, v in result.items() if k != "top_kernels"}, flush=True)
            if "top_kernels" in result:
                print(result["top_kernels"], flush=True)
        # every variant's row as soon as it ends: a run cut off keeps what it measured
        if args.json:
            (out / "gpu_step_profile.json").write_text(json.dumps(report, indent=1))
        (out / "gpu_step_profile.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [
        f"# One training step on {report['device']}",
        "",
        f"`{report['command']}`; commit {report['machine'].get('git_commit')}",
        "",
        "| variant | segments/s | ms / step | device ms / step | warm-up s (compile) | peak GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["variants"].items():
        if "segments_per_s" not in r:
            lines.append(f"| {name} | {r.get('error') or r.get('skipped')} | | | | |")
            continue
        lines.append(
            f"| {name} | {r['segments_per_s']} | {r['ms_per_step']} | "
            f"{r.get('device_ms_per_step', '')} | {r['warmup_s']} | {r['peak_gib']} |"
        )
    for name, r in report["variants"].items():
        if "top_kernels" in r:
            lines += ["", f"## {name}", "", "```", r["top_kernels"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
