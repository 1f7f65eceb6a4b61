"""How busy the driver's GPUs are while a search runs: NVML's utilisation and memory of every
GPU the driver's machine has, sampled in a thread.

On one GPU machine (the driver and the trials share it) this is the GPU the search used; on a
cluster whose head has no GPU there is nothing to sample and the summary says so. NVML comes
from ``pynvml`` (the ``nvidia-ml-py`` package that CUDA builds of torch bring); without it, or
without a GPU, the monitor records nothing and costs nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuUse:
    """What the samples of one stretch of time say."""

    devices: tuple[str, ...]  # the GPUs' names
    busy_pct: float  # mean NVML utilisation over the samples and the GPUs
    memory_peak_gib: float  # the most memory in use on one GPU, all processes together
    samples: int
    seconds: float  # from the first sample to the last

    def to_dict(self) -> dict:
        return {
            "devices": list(self.devices),
            "busy_pct": round(self.busy_pct, 1),
            "memory_peak_gib": round(self.memory_peak_gib, 2),
            "samples": self.samples,
            "seconds": round(self.seconds, 1),
        }


class GpuMonitor:
    """NVML samples of every GPU every ``period_s`` between :meth:`start` and :meth:`stop`;
    :meth:`use` summarises them (None when nothing was sampled)."""

    def __init__(self, period_s: float = 0.5) -> None:
        self.period_s = period_s
        self._samples: list[tuple[float, float, int]] = []  # (time, mean util %, max bytes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml, self._handles, self.devices = None, [], ()
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.devices = tuple(_text(pynvml.nvmlDeviceGetName(h)) for h in self._handles)
            self._nvml = pynvml if self._handles else None
        except Exception:  # noqa: BLE001 - no pynvml, no driver or no GPU: nothing to sample
            self._nvml = None

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def start(self) -> GpuMonitor:
        """Start sampling anew (the samples of an earlier start are dropped)."""
        if self.available and self._thread is None:
            self._samples, self._stop = [], threading.Event()
            self._thread = threading.Thread(target=self._run, name="gpu-monitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                util = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
                used = [self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles]
            except Exception:  # noqa: BLE001 - a GPU that stops answering ends the sampling
                return
            self._samples.append((time.time(), sum(util) / len(util), max(used)))
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def use(self, start: float | None = None, end: float | None = None) -> GpuUse | None:
        """What the samples between ``start`` and ``end`` (``time.time()`` values; all of them
        when None, or when none falls inside) say; None when there is none."""
        samples = list(self._samples)
        if start is not None or end is not None:
            low, high = start or 0.0, end or float("inf")
            samples = [s for s in samples if low <= s[0] <= high] or samples
        if not samples:
            return None
        return GpuUse(
            devices=self.devices,
            busy_pct=sum(s[1] for s in samples) / len(samples),
            memory_peak_gib=max(s[2] for s in samples) / 2**30,
            samples=len(samples),
            seconds=samples[-1][0] - samples[0][0],
        )


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
