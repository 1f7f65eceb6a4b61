"""Block 1's Triton kernel pair (raysearch.triton_conv1) against the plain PyTorch block, run
by Triton's interpreter on CPU tensors: outputs and gradients at odd sizes, ties and NaNs (the
window slots ATen's rule gives), autocast's bf16 output in NHWC, the custom ops' registration
(fake tensors, autograd), the whole network, and what the backward pass keeps.

TRITON_INTERPRET must be set before Triton decorates the kernels, so this module sets it when
pytest collects it (before any test imports raysearch.triton_conv1); Ray workers started later
inherit it, where nothing uses Triton."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from raysearch import triton_conv1  # noqa: E402
from raysearch.model import SECNN, ModelConfig  # noqa: E402
from raysearch.ops import NO_SLOT, _quarters, _relu_max  # noqa: E402
from raysearch.triton_conv1 import conv1_pool, triton_conv1_relu_max_pool2x2  # noqa: E402
from tests.test_model import train_step_grads  # noqa: E402
from tests.test_ops import conv1_case, conv1_grads, plain_conv1  # noqa: E402
from tests.test_packing import formula_saved_bytes, saved_activation_bytes  # noqa: E402


def test_the_kernels_run_interpreted_here():
    assert triton_conv1.INTERPRETED, "TRITON_INTERPRET=1 was not set before Triton's import"


@pytest.mark.parametrize("shape", [(2, 1, 10, 8), (2, 1, 17, 11), (1, 1, 65, 33)])
def test_the_pair_equals_conv_relu_max_pool_in_float32(shape):
    """The same tolerances as the stencil written in torch (tests/test_ops.py): the nine
    products summed in another order than the conv's, the weight gradient's sum over every
    position split over programs; ties (the zero patch) send the gradient where ATen does."""
    x, weight, bias = conv1_case(shape)
    out, grads = conv1_grads(triton_conv1_relu_max_pool2x2, x, weight, bias)
    expected_out, expected_grads = conv1_grads(plain_conv1, x, weight, bias)
    assert out.shape == expected_out.shape == (shape[0], 8, shape[2] // 2, shape[3] // 2)
    torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(grads, expected_grads, strict=True):  # input, weight, bias
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max())
    tied_grad = grads[0][0, 0, 1:5, 1:5]  # in the zero patch every window is a tie
    torch.testing.assert_close(tied_grad, expected_grads[0][0, 0, 1:5, 1:5], rtol=0, atol=1e-6)


def reference_slots(x, weight, bias) -> torch.Tensor:
    """The window slot ATen's rule picks, from the plain conv's output (raysearch.ops)."""
    _, slot = _relu_max(_quarters(F.conv2d(x, weight, bias, padding=1)))
    return slot


def test_the_slots_follow_atens_rule_on_ties_zeros_and_nans():
    """Where the zero patch makes the four window values equal (the bias) the first one wins
    when the bias is positive and none passes a gradient when it is not; a NaN input makes
    the windows around it NaN, and a NaN wins (relu(NaN) is NaN and passes its gradient)."""
    x, weight, bias = conv1_case((2, 1, 17, 11))
    x[1, 0, 7, 4] = float("nan")
    out, slot = conv1_pool(x, weight, bias, torch.float32, False)
    expected = reference_slots(x, weight, bias)
    assert torch.equal(slot, expected)
    tied = slot[0, :, 1:2, 1:2].flatten()  # windows inside the zero patch: every value the bias
    assert tied.tolist() == [0 if b > 0 else NO_SLOT for b in bias.tolist()]
    assert out[1, :, 3:5, 2].isnan().any() and (slot[1, :, 3, 2] < NO_SLOT).all()
    torch.testing.assert_close(out, plain_conv1(x, weight, bias), equal_nan=True)


def test_autocasts_bf16_output_is_written_nhwc_and_its_gradient_read_as_it_comes():
    """Under autocast the next conv reads bf16 in NHWC: the kernel writes that directly (the
    float32 result rounded once), and the backward reads the gradient in the layout and dtype
    the next block hands back, with the same weight gradients as a float32 NCHW one."""
    x, weight, bias = conv1_case((2, 1, 17, 11))
    exact = triton_conv1_relu_max_pool2x2(x, weight, bias)
    out = triton_conv1_relu_max_pool2x2(x, weight, bias, torch.bfloat16, nhwc=True)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    assert not exact.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, exact.to(torch.bfloat16), rtol=0, atol=0)

    grad = torch.randn(exact.shape, generator=torch.Generator().manual_seed(3))
    grad = grad.to(torch.bfloat16)
    leaves = [t.clone().requires_grad_() for t in (weight, bias)]
    nhwc = triton_conv1_relu_max_pool2x2(x, *leaves, torch.bfloat16, nhwc=True)
    ours = torch.autograd.grad(nhwc, leaves, grad.contiguous(memory_format=torch.channels_last))
    leaves = [t.clone().requires_grad_() for t in (weight, bias)]
    plain = triton_conv1_relu_max_pool2x2(x, *leaves)
    theirs = torch.autograd.grad(plain, leaves, grad.float())
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.dtype == torch.float32  # the parameters' dtype, not autocast's
        torch.testing.assert_close(mine, other, rtol=1e-5, atol=1e-5 * other.abs().max())


def test_the_custom_ops_are_registered_for_the_compiler():
    """torch.library's own check: schema, fake implementations (shapes, strides, dtypes as the
    real ones: torch.compile plans the graph on them), autograd registration."""
    x, weight, bias = conv1_case((1, 1, 9, 7))
    weight.requires_grad_()
    bias.requires_grad_()
    for args in [(x, weight, bias, torch.float32, False), (x, weight, bias, torch.bfloat16, True)]:
        torch.library.opcheck(conv1_pool, args)


def test_the_network_with_the_pair_trains_as_the_plain_one():
    config = ModelConfig(channels=(8, 8, 8, 8, 8), input_shape=(65, 33), dropout=0.0)
    x = torch.randn(2, 1, 65, 33) * 20 - 40
    results = {}
    for kernels in ("aten", "triton-conv1"):
        torch.manual_seed(0)
        model = SECNN(config, kernels)
        results[kernels] = train_step_grads(model, x)
        assert list(model.state_dict()) == list(SECNN(config).state_dict())  # checkpoints load
    torch.testing.assert_close(results["aten"][0], results["triton-conv1"][0])
    for name, grad in results["aten"][1].items():
        theirs = results["triton-conv1"][1][name]
        torch.testing.assert_close(theirs, grad, rtol=1e-4, atol=1e-5 * grad.abs().max())


def test_what_the_backward_keeps_is_what_the_packing_formula_counts():
    """Block 1 keeps the float32 input and a 1-byte slot per output (no full-size conv output,
    no padded copy). Measured against ``select`` on the same network, where the rest (SE's
    (B, C) vectors, which the formula leaves out) is the same: the difference is exact."""
    batch, shape = 3, (65, 33)
    config = ModelConfig(input_shape=shape, dropout=0.0)
    measured, formula = {}, {}
    for kernels in ("select", "triton-conv1"):
        torch.manual_seed(0)
        model = SECNN(config, kernels)
        measured[kernels] = saved_activation_bytes(model, batch, shape, amp=True)
        formula[kernels] = formula_saved_bytes(batch, kernels, False, amp=True, shape=shape)
    assert formula["triton-conv1"] == pytest.approx(measured["triton-conv1"], rel=0.02)
    ours = measured["triton-conv1"] - measured["select"]
    assert ours == formula["triton-conv1"] - formula["select"]


def test_a_cpu_tensor_without_the_interpreter_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(triton_conv1, "INTERPRETED", False)
    x, weight, bias = conv1_case((1, 1, 9, 7))
    with pytest.raises(ValueError, match="triton-conv1 runs on CUDA devices .* got a cpu tensor"):
        triton_conv1_relu_max_pool2x2(x, weight, bias)


@pytest.mark.slow  # one Inductor compile
def test_it_compiles_as_one_graph_with_the_eager_numbers():
    torch._dynamo.reset()
    try:
        compiled = torch.compile(triton_conv1_relu_max_pool2x2, fullgraph=True)
        x, weight, bias = conv1_case((2, 1, 17, 11))
        out, grads = conv1_grads(compiled, x, weight, bias)
        expected_out, expected_grads = conv1_grads(triton_conv1_relu_max_pool2x2, x, weight, bias)
        torch.testing.assert_close(out, expected_out, rtol=0, atol=0)
        for ours, theirs in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    finally:
        torch._dynamo.reset()
