"""How many trials share one GPU (``resources.gpu: auto``, ``--trials-per-gpu auto``): K from
the GPU's memory and what one trial holds there. Pure arithmetic on the network's shape and
the splits' sizes, no Ray and no torch (:mod:`raysearch.search.gpu_share` gathers the inputs).

What a trial holds on its GPU (:mod:`raysearch.training.loop`): the train and validation
splits (the test split takes the train split's place after the last epoch); the weights, their
gradients, Adam's two moments, the best weights' copy and autocast's bf16 copy; and at any
moment either a training step's activations (what autograd keeps for the backward pass, plus
the largest short-lived tensor) or an evaluation batch's (no gradients, ``eval_batch_size``
segments, run eagerly). Beyond what torch counts: the CUDA context and the caching allocator's
slack; and a share of the GPU is kept free. The constants are calibrated on the H100 runs, and
the activation terms checked against the tensors torch saves on a CPU (docs/performance.md,
``tests/test_packing.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 2**30
CONTEXT_BYTES = int(0.75 * GIB)  # CUDA context and library handles: not in torch's count
ALLOCATOR_SLACK = 0.15  # what torch's allocator reserves beyond its peak allocation
HEADROOM = 0.10  # of the GPU's memory kept free
MPS_CLIENTS = 48  # CUDA MPS clients per GPU (Volta and later)
BYTES_PER_PARAMETER = 4 + 4 + 8 + 4 + 2  # weight, gradient, Adam moments, best copy, bf16 copy
INDEX_BYTES = 8  # ATen's max-pool indices (int64), also computed without gradients on CUDA


@dataclass(frozen=True)
class Network:
    """What sizes a trial's activations: the network, its batch sizes and how it runs."""

    channels: tuple[int, ...]
    input_shape: tuple[int, int]  # (frequency bins, frames)
    parameters: int  # trainable parameters (raysearch.model.count_parameters)
    se_blocks: tuple[int, ...] = (1, 2, 3, 4, 5)
    dropout: float = 0.25
    batch_size: int = 32
    eval_batch_size: int = 256
    kernels: str = "aten"  # raysearch.ops.KERNELS
    compiled: bool = False
    amp: bool = True  # bf16 activations (2 bytes), else float32 (4)


@dataclass(frozen=True)
class Splits:
    """Segments per split, as the shards hold them (float16 spectrograms, int64 labels)."""

    train: int
    val: int
    test: int

    def bytes_on_device(self, input_shape: tuple[int, int]) -> int:
        """The most the loop holds at once: train + val while training, val + test after."""
        segment = input_shape[0] * input_shape[1] * 2 + 8
        return max(self.train + self.val, self.val + self.test) * segment


@dataclass(frozen=True)
class TrialMemory:
    """A trial's GPU memory in bytes, by what holds it."""

    data: int
    parameters: int
    step: int  # a training step's activations at their peak
    evaluation: int  # an evaluation batch's, at their peak

    @property
    def allocated(self) -> int:
        """torch's peak allocation (``torch.cuda.max_memory_allocated``)."""
        return self.data + self.parameters + max(self.step, self.evaluation)

    @property
    def total(self) -> int:
        """What the trial takes from the GPU: the peak, the allocator's slack, the context."""
        return int(self.allocated * (1 + ALLOCATOR_SLACK)) + CONTEXT_BYTES

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {getattr(self, name) / GIB:.2f}"
            for name in ("data", "parameters", "step", "evaluation")
        )
        return (
            f"{self.total / GIB:.2f} GiB a trial ({parts} GiB; peak {self.allocated / GIB:.2f} "
            f"GiB, +{ALLOCATOR_SLACK:.0%} allocator slack, +{CONTEXT_BYTES / GIB:.2f} GiB CUDA "
            f"context)"
        )


@dataclass(frozen=True)
class Packing:
    """K trials per GPU, and what bounded it."""

    trials: int
    bound: str  # "memory", "CPUs" or "MPS clients"
    fits: bool  # False: not even one trial fits in the memory (K is then 1)
    gpu_bytes: int
    trial: TrialMemory

    def describe(self) -> str:
        usable = self.gpu_bytes * (1 - HEADROOM) / GIB
        fit = "" if self.fits else "; one trial does not fit: it may run out of memory"
        return (
            f"{self.trials} trials per GPU, bound by {self.bound} ({self.gpu_bytes / GIB:.1f} "
            f"GiB GPU, {usable:.1f} GiB usable with {HEADROOM:.0%} kept free; "
            f"{self.trial.describe()}){fit}"
        )


def _blocks(network: Network):
    """(index, c_in, c_out, height, width, has SE) of every block, input sizes."""
    height, width = network.input_shape
    c_in = 1
    for i, c_out in enumerate(network.channels):
        yield i, c_in, c_out, height, width, (i + 1) in network.se_blocks
        c_in, height, width = c_out, height // 2, width // 2


def _fused_conv1(network: Network, index: int) -> bool:
    return network.kernels in ("select-conv1", "triton-conv1") and index == 0


def step_saved_bytes(network: Network) -> int:
    """What autograd keeps for a training step's backward pass, in bytes."""
    batch, (height, width) = network.batch_size, network.input_shape
    act = 2 if network.amp else 4
    if network.kernels == "select-conv1":  # the padded float32 input, shared by the 9 taps
        saved = batch * (height + 2) * (width + 2) * 4
    elif network.kernels == "triton-conv1":  # the float32 input the kernels read
        saved = batch * height * width * 4
    else:  # conv 1's input: autocast's bf16 copy, or the float32 input itself
        saved = batch * height * width * act
    for _, _, c_out, h, w, se in _blocks(network):
        full, pooled = batch * c_out * h * w, batch * c_out * (h // 2) * (w // 2)
        if network.kernels != "aten":
            saved += pooled  # the 1-byte window slot
        elif network.compiled:
            saved += full + pooled  # Inductor: a 1-byte ReLU mask and 1-byte window offsets
        else:
            saved += full * act + pooled * INDEX_BYTES  # ReLU output, int64 indices
        if network.dropout > 0:
            saved += pooled  # the dropout mask (bool)
        saved += pooled * act * (2 if se else 1)  # SE's input and the block's output
    return saved


def _step_transient(network: Network, i: int, c_in: int, c_out: int, h: int, w: int) -> int:
    """The largest short-lived tensors of block ``i`` in a training step, forward or backward."""
    batch, act = network.batch_size, 2 if network.amp else 4
    full, pooled = batch * c_out * h * w, batch * c_out * (h // 2) * (w // 2)
    grad_input = batch * c_in * h * w * act if i > 0 else 0  # block 1's input needs none
    if _fused_conv1(network, i):
        # triton-conv1, or select-conv1 compiled: one kernel forward, reductions backward;
        # select-conv1 eager: the four float32 window candidates and two partial sums
        # forward, their gradients and a product backward
        return 0 if network.compiled or network.kernels == "triton-conv1" else 6 * pooled * 4
    if network.kernels == "aten" and not network.compiled:
        backward = 2 * full * act  # max-pool's gradient, then ReLU's
    else:
        backward = full * act  # the select (or Inductor's fused pool + ReLU backward)
    return max(full * act, backward + grad_input)  # forward: the conv output until pooled


def step_bytes(network: Network) -> int:
    """A training step's activations at their peak: what is saved, plus the largest
    short-lived tensor (the logits and the loss are negligible)."""
    transient = max(
        _step_transient(network, i, c_in, c_out, h, w)
        for i, c_in, c_out, h, w, _ in _blocks(network)
    )
    return step_saved_bytes(network) + transient


def evaluation_bytes(network: Network) -> int:
    """An evaluation batch's activations at their peak (no gradients, eager: the loop
    evaluates the uncompiled module). Block 1's conv output dominates at the report's size."""
    batch, (height, width) = network.eval_batch_size, network.input_shape
    act = 2 if network.amp else 4
    peak = 2 * batch * height * width * 4  # the input to float32, then standardised
    # block 1's input: the standardised float32 input, and autocast's bf16 copy of it
    held = batch * height * width * (4 + (2 if network.amp else 0))
    for _, _, c_out, h, w, _ in _blocks(network):
        full, pooled = batch * c_out * h * w, batch * c_out * (h // 2) * (w // 2)
        if network.kernels == "aten":  # conv output + ReLU output, then indices and the output
            block = max(2 * full * act, full * act + pooled * INDEX_BYTES + pooled * act)
        else:  # conv output, then the window maximum and its ReLU
            block = full * act + 2 * pooled * act
        peak = max(peak, held + block)
        held = pooled * act  # the next block's input
    return peak


def trial_memory(network: Network, splits: Splits) -> TrialMemory:
    return TrialMemory(
        data=splits.bytes_on_device(network.input_shape),
        parameters=network.parameters * BYTES_PER_PARAMETER,
        step=step_bytes(network),
        evaluation=evaluation_bytes(network),
    )


def trials_per_gpu(
    gpu_bytes: int, trial: TrialMemory, cpus: float | None = None, cpus_per_trial: float = 1.0
) -> Packing:
    """K: as many trials as fit in the GPU's memory less :data:`HEADROOM`, at most as many as
    the GPU's node has CPUs for (``cpus``, when known: more could not run at once) and CUDA
    MPS takes clients; at least 1."""
    by_memory = math.floor(gpu_bytes * (1 - HEADROOM) / trial.total)
    bounds = {"memory": by_memory, "MPS clients": MPS_CLIENTS}
    if cpus is not None:
        bounds["CPUs"] = math.floor(cpus / cpus_per_trial + 1e-9)
    bound = min(bounds, key=bounds.get)
    return Packing(max(1, bounds[bound]), bound, by_memory >= 1, gpu_bytes, trial)
