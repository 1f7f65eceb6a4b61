"""Trials per GPU from memory (raysearch.search.packing): the arithmetic on the report's cards
and inputs, its calibration against the H100's measured peak, and its activation terms
against what torch saves for the backward pass on a CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from raysearch.model import SECNN, ModelConfig, count_parameters
from raysearch.search.packing import (
    GIB,
    HEADROOM,
    MPS_CLIENTS,
    Network,
    Splits,
    step_saved_bytes,
    trial_memory,
    trials_per_gpu,
)

GTZAN = Splits(train=11_400, val=1_900, test=5_700)  # segments of GTZAN's 1,000 clips
STFT, MEL = (513, 129), (128, 129)
# total memory as nvidia-smi reports it (the H100's in results/gpu-h100-synthetic-2)
CARDS = {"A10G 24 GB": 23_028 * 2**20, "H100 80 GB": 81_559 * 2**20, "H200 141 GB": 143_771 * 2**20}


def report_network(input_shape=STFT, **settings) -> Network:
    config = ModelConfig(input_shape=input_shape)
    return Network(config.channels, input_shape, count_parameters(SECNN(config)), **settings)


@pytest.mark.parametrize(
    ("card", "input_shape", "kernels", "trials"),
    [
        ("A10G 24 GB", STFT, "aten", 3),
        ("H100 80 GB", STFT, "aten", 13),
        ("H200 141 GB", STFT, "aten", 23),
        ("A10G 24 GB", STFT, "select", 4),
        ("H100 80 GB", STFT, "select", 15),
        ("H200 141 GB", STFT, "select", 28),
        ("A10G 24 GB", MEL, "aten", 10),
        ("H100 80 GB", MEL, "aten", 37),
        ("H200 141 GB", MEL, "aten", MPS_CLIENTS),
    ],
)
def test_trials_per_card_and_input(card, input_shape, kernels, trials):
    trial = trial_memory(report_network(input_shape, kernels=kernels, compiled=True), GTZAN)
    packing = trials_per_gpu(CARDS[card], trial)
    assert packing.trials == trials and packing.fits
    if trials < MPS_CLIENTS:  # memory decides: K fit with the headroom kept, K + 1 do not
        assert packing.bound == "memory"
        assert trials * trial.total <= CARDS[card] * (1 - HEADROOM) < (trials + 1) * trial.total
    else:
        assert packing.bound == "MPS clients"


def test_four_report_sized_trials_do_not_fit_a_24_gb_card():
    """The fixed gpu: 0.25 the spaces shipped with: 4 trials on an A10G."""
    trial = trial_memory(report_network(compiled=True), GTZAN)
    assert 4 * trial.total > CARDS["A10G 24 GB"] * (1 - HEADROOM)
    assert 3 * trial.total <= CARDS["A10G 24 GB"] * (1 - HEADROOM)


def test_the_arithmetic_gives_the_peak_measured_on_an_h100():
    """results/gpu-h100-synthetic-2: 4.75 GiB torch peak per trial (max_memory_allocated), the
    loop then holding all three splits at its last evaluation; 49.5-50.0 GiB for 8 trials in a
    search (NVML), about 6.2 GiB a trial, context and allocator slack included."""
    trial = trial_memory(report_network(), GTZAN)
    all_three = GTZAN.train + GTZAN.val + GTZAN.test
    then = dataclasses.replace(trial, data=all_three * (513 * 129 * 2 + 8))
    assert then.allocated / GIB == pytest.approx(4.75, rel=0.02)
    assert then.total / GIB == pytest.approx(6.2, rel=0.02)
    assert trial.allocated < then.allocated  # the test split now replaces the train split


def test_more_memory_never_fewer_trials_and_at_least_one():
    trial = trial_memory(report_network(), GTZAN)
    counts = [trials_per_gpu(gib * GIB, trial).trials for gib in range(1, 200, 7)]
    assert counts == sorted(counts) and min(counts) == 1
    tiny = trials_per_gpu(2 * GIB, trial)
    assert tiny.trials == 1 and not tiny.fits and "does not fit" in tiny.describe()


def test_cpus_of_the_gpu_node_bound_k():
    trial = trial_memory(report_network(MEL), GTZAN)
    packing = trials_per_gpu(CARDS["H100 80 GB"], trial, cpus=16, cpus_per_trial=1)
    assert (packing.trials, packing.bound) == (16, "CPUs")
    assert trials_per_gpu(CARDS["H100 80 GB"], trial, cpus=8, cpus_per_trial=0.5).trials == 16


def test_a_larger_batch_and_wider_network_need_more():
    base = trial_memory(report_network(), GTZAN)
    wider = ModelConfig(channels=(64, 128, 256, 512, 256))
    wide = Network(wider.channels, STFT, count_parameters(SECNN(wider)))
    assert trial_memory(wide, GTZAN).total > base.total
    assert trial_memory(report_network(batch_size=128), GTZAN).step > base.step
    assert trial_memory(report_network(eval_batch_size=64), GTZAN).evaluation < base.evaluation


def saved_activation_bytes(model: torch.nn.Module, batch: int, shape, amp: bool) -> int:
    """Bytes of the batch-sized tensors autograd saves for a training step's backward pass,
    each storage once (a view shares its base's)."""
    storages = {}

    def pack(tensor):
        if tensor.dim() and tensor.shape[0] == batch:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model(torch.randn(batch, 1, *shape))
    return sum(storages.values())


# dropout 0: a CPU's dropout keeps a mask of the activations' dtype, a GPU's a bool mask; a
# small odd-sized input (the arithmetic is per element)
SMALL = (129, 65)
MEASURED = ModelConfig(input_shape=SMALL, dropout=0.0)


def formula_saved_bytes(batch: int, kernels: str, compiled: bool, amp: bool, shape=SMALL) -> int:
    network = Network(MEASURED.channels, shape, 0, dropout=0.0, batch_size=batch, kernels=kernels)
    return step_saved_bytes(dataclasses.replace(network, compiled=compiled, amp=amp))


@pytest.mark.parametrize("kernels", ["aten", "select", "select-conv1"])
@pytest.mark.parametrize("amp", [True, False])
def test_saved_activations_are_what_torch_saves_on_a_cpu(kernels, amp):
    batch = 3  # no layer has 3 units: weights are not counted as activations
    torch.manual_seed(0)
    measured = saved_activation_bytes(SECNN(MEASURED, kernels), batch, SMALL, amp)
    formula = formula_saved_bytes(batch, kernels, compiled=False, amp=amp)
    assert formula == pytest.approx(measured, rel=0.01)  # the rest: SE's (B, C) vectors


@pytest.mark.slow  # three Inductor compiles
@pytest.mark.parametrize("kernels", ["aten", "select", "select-conv1"])
def test_saved_activations_of_the_compiled_network_are_what_inductor_saves(kernels):
    """Compiled, the saved tensors are the partitioner's choice: for ATen's ReLU → max-pool a
    1-byte ReLU mask and 1-byte window offsets instead of the ReLU output and int64 indices."""
    batch = 3
    torch.manual_seed(0)
    torch._dynamo.reset()
    try:
        model = torch.compile(SECNN(MEASURED, kernels, pad_se=True))
        measured = saved_activation_bytes(model, batch, SMALL, amp=True)
    finally:
        torch._dynamo.reset()
    formula = formula_saved_bytes(batch, kernels, compiled=True, amp=True)
    assert formula == pytest.approx(measured, rel=0.01)  # the rest: SE's (B, C) vectors
