"""Training batches drawn on the device: the split is copied there once per trial, and each
batch is an index gather of a per-epoch permutation (no host round trip per step)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from raysearch.training.data import SplitArrays


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor of ``array`` on ``device``; on a CPU it shares the array's memory.

    Arrays from Ray's object store are read-only views of shared memory; nothing here writes
    into them (batches are gathers, i.e. new tensors), so torch's warning about it is noise.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    return tensor.to(device) if device.type != "cpu" else tensor


class DeviceBatches:
    """Shuffled (spectrogram, label) batches of the train split, held on ``device``.

    ``limit`` > 0 keeps a seeded random subset of that many segments. With ``world`` > 1
    (DDP), rank ``rank`` takes every ``world``-th segment, cut to the same count on every rank
    so all ranks take the same number of steps (at most ``world - 1`` segments are left out).
    """

    def __init__(
        self,
        split: SplitArrays,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
        limit: int = 0,
        drop_last: bool = False,
    ) -> None:
        index = np.arange(len(split))
        if limit and limit < len(index):
            index = np.sort(np.random.default_rng(seed).permutation(len(index))[:limit])
        if world > 1:
            index = index[rank::world][: len(index) // world]
        whole = len(index) == len(split)
        self.x = to_device(split.spectrogram if whole else split.spectrogram[index], device)
        self.y = to_device(split.label if whole else split.label[index], device)
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.drop_last = drop_last  # a compiled model would recompile for the short batch

    def __len__(self) -> int:
        """Segments per epoch."""
        if self.drop_last:
            return len(self.y) - len(self.y) % self.batch_size
        return len(self.y)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``(B, F, T)`` float16 and ``(B,)`` int64 in a fresh order for ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.y), generator=generator)[: len(self)].to(self.device)
        for index in order.split(self.batch_size):
            yield self.x.index_select(0, index), self.y.index_select(0, index)

    def release(self) -> None:
        """Let the split's device memory go (a run that trains no more: its test split then
        takes that memory instead of adding to it)."""
        self.x = self.x.new_empty((0, *self.x.shape[1:]))  # not a view: the storage goes
        self.y = self.y.new_empty((0,))
