"""Check on a GPU machine: a run that asks for more GPU memory than there is ends with the one
line of :class:`raysearch.training.gpu_memory.GpuOutOfMemory` (naming the GPU, the trials
sharing it and the run's peak), not a CUDA traceback or a hang. It trains the project's loop
on a batch far too large for any GPU (``--batch``) and prints that line.

    python benchmarks/gpu_oom_check.py          # a GPU machine; on CPUs it only says so
"""

from __future__ import annotations

import argparse
import sys
import time

from machine import say  # first: puts the checkout on sys.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8192, help="segments per step (too many)")
    parser.add_argument("--trials-per-gpu", type=int, default=8, help="the share the run says")
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from raysearch.model import ModelConfig
    from raysearch.training.config import TrainConfig
    from raysearch.training.data import SplitArrays
    from raysearch.training.gpu_memory import GpuOutOfMemory
    from raysearch.training.loop import Placement, fit

    if not torch.cuda.is_available():
        say("no CUDA here: nothing to check (the check allocates past a GPU's memory)")
        return 0
    n = args.batch
    labels = np.arange(n) % 10
    split = SplitArrays(
        np.zeros((n, 513, 129), dtype=np.float16), labels, np.array([f"t{i}" for i in range(n)])
    )
    config = TrainConfig(
        epochs=1, batch_size=n, patience=0, use_gpu=True, gpus_per_worker=1 / args.trials_per_gpu
    )
    started = time.time()
    try:
        fit(
            ModelConfig(),
            config,
            {"train": split, "val": split, "test": split},
            lambda metrics, checkpoint: None,
            Placement(torch.device("cuda", 0)),
        )
    except GpuOutOfMemory as exc:
        say(f"GpuOutOfMemory after {time.time() - started:.1f} s, one line: {exc}")
        return 0
    say(f"no out-of-memory error at batch {n}: give a larger --batch")
    return 1


if __name__ == "__main__":
    sys.exit(main())
