"""Benchmark: one training step of the default SE-CNN on a GPU, variant against variant.

The step is the project's own (:func:`raysearch.training.loop.train_step`) on random input of the
shards' shape, so no data preparation and no Ray are needed: it isolates what the GPU does per
step. Each variant runs ``--warmup`` steps, then ``--steps`` timed steps (CUDA-synchronised at
both ends); segments/s = steps x batch / seconds. The profiler lists the top CUDA kernels of the
first variant and of the fastest one.

    python benchmarks/gpu_step_profile.py --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

VARIANTS = {
    # name: (batch, amp, channels_last, compile mode)
    "bf16 channels_last b32 (default)": (32, True, True, "off"),
    "bf16 NCHW b32": (32, True, False, "off"),
    "fp32/tf32 NCHW b32": (32, False, False, "off"),
    "fp32/tf32 channels_last b32": (32, False, True, "off"),
    "bf16 NCHW b128": (128, True, False, "off"),
    "bf16 channels_last b128": (128, True, True, "off"),
    "compile default, best layout b32": (32, None, None, "default"),
}


def run_variant(batch: int, amp: bool, channels_last: bool, mode: str, args, profile: bool):
    import torch

    from raysearch.model import SECNN, ModelConfig
    from raysearch.training.loop import train_step

    torch.manual_seed(0)
    device = torch.device("cuda")
    model = SECNN(ModelConfig(input_shape=(513, 129))).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    stepped = torch.compile(model, mode=mode) if mode != "off" else model
    x = (torch.randn(batch * 8, 513, 129, device=device) * 20 - 40).half()
    y = torch.randint(0, 10, (batch * 8,), device=device)
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)]
    started = time.perf_counter()
    for i in range(args.warmup):
        train_step(stepped, optimizer, *batches[i % 8], amp, channels_last)
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(args.steps):
        train_step(stepped, optimizer, *batches[i % 8], amp, channels_last)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "segments_per_s": round(args.steps * batch / seconds, 1),
        "ms_per_step": round(seconds / args.steps * 1000, 3),
        "warmup_s": round(warm_s, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
            for i in range(10):
                train_step(stepped, optimizer, *batches[i % 8], amp, channels_last)
            torch.cuda.synchronize()
        result["top_kernels"] = prof.key_averages().table(
            sort_by="cuda_time_total", row_limit=14, max_name_column_width=70
        )
    torch.cuda.reset_peak_memory_stats()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu-step-out")
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "variants": {}}
    best = None
    for name, (batch, amp, channels_last, mode) in VARIANTS.items():
        if mode != "off":  # the compiled variant takes the fastest eager b32 layout
            _, amp, channels_last = best
        try:
            result = run_variant(batch, amp, channels_last, mode, args, profile=name.endswith(")"))
        except Exception as exc:  # noqa: BLE001 - report and go on
            result = {"error": repr(exc)[:500]}
        report["variants"][name] = result
        print(name, {k: v for k, v in result.items() if k != "top_kernels"}, flush=True)
        if "top_kernels" in result:
            print(result["top_kernels"], flush=True)
        speed = result.get("segments_per_s", 0)
        if batch == 32 and mode == "off" and (best is None or speed > best[0]):
            best = (speed, amp, channels_last)
        (out / "gpu_step_profile.json").write_text(json.dumps(report, indent=1))
    # the fastest eager b32 variant's kernels
    _, amp, channels_last = best
    result = run_variant(32, amp, channels_last, "off", args, profile=True)
    report["fastest_b32_kernels"] = {"amp": amp, "channels_last": channels_last, **result}
    print(f"fastest b32 (amp={amp}, channels_last={channels_last}):")
    print(result["top_kernels"], flush=True)
    (out / "gpu_step_profile.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
