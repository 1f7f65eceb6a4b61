"""A run that runs out of GPU memory ends with one line saying what shares the GPU and how
much this run held, instead of a CUDA allocator traceback (or a retry loop nobody reads)."""

from __future__ import annotations

import torch

from raysearch.errors import UserError


class GpuOutOfMemory(UserError):
    """A trial ran out of GPU memory; the message names the GPU, the trials sharing it and
    this trial's peak."""


def trials_sharing(gpu_share: float) -> int:
    """How many trials a GPU share stands for: 1/4 of a GPU is one of 4 trials."""
    return max(1, round(1 / gpu_share)) if gpu_share > 0 else 1


def out_of_memory_line(
    gpu: str, total_gib: float, free_gib: float, trials: int, peak_gib: float
) -> str:
    return (
        f"out of GPU memory on {gpu} ({total_gib:.1f} GiB, {free_gib:.1f} GiB free now), "
        f"shared by {trials} trial(s); this trial's peak was {peak_gib:.2f} GiB (torch): "
        f"run fewer trials per GPU (--trials-per-gpu K, or resources.gpu: 1/K in the space)"
    )


def gpu_out_of_memory(device: torch.device, gpu_share: float) -> GpuOutOfMemory:
    """The one-line error for a run on ``device`` holding ``gpu_share`` of it (its Ray share),
    read from the CUDA device after the failed allocation."""
    free, total = torch.cuda.mem_get_info(device)
    return GpuOutOfMemory(
        out_of_memory_line(
            torch.cuda.get_device_name(device),
            total / 2**30,
            free / 2**30,
            trials_sharing(gpu_share),
            torch.cuda.max_memory_allocated(device) / 2**30,
        )
    )
