"""The rewritten conv → ReLU → 2x2 max-pool (raysearch.ops) against the plain PyTorch block:
outputs and gradients, odd sizes, ties, zeros and NaNs, what the backward pass keeps, and the
same under torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raysearch.ops import NO_SLOT, conv1_relu_max_pool2x2, relu_max_pool2x2

# odd sizes floor under pooling (513 → 256, 129 → 64), as the report's STFT segments do
SHAPES = [(2, 3, 8, 6), (2, 3, 9, 7), (1, 2, 513, 129)]


def tied(shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Values on a coarse grid (many equal values in a window), a window of zeros, a window of
    negatives with a zero, and a window whose maximum is exactly 0."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=generator) * 2).round() / 2
    x[0, 0, :2, :2] = 0.0
    x[0, 0, :2, 2:4] = torch.tensor([[-1.0, -0.5], [0.0, -2.0]])
    x[0, 1, :2, :2] = torch.tensor([[1.5, 1.5], [1.5, -1.0]])
    return x.to(dtype)


def pool_and_grad(fn, x: torch.Tensor, grad: torch.Tensor | None = None):
    x = x.clone().requires_grad_()
    out = fn(x)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    out.backward(grad)
    return out.detach(), x.grad


def plain(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(F.relu(x), 2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_relu_max_pool_equals_relu_then_max_pool_exactly(shape, dtype, channels_last):
    x = tied(shape, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out, grad = pool_and_grad(relu_max_pool2x2, x)
    expected_out, expected_grad = pool_and_grad(plain, x)
    assert out.shape == (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    assert out.dtype == dtype
    assert torch.equal(out, expected_out)
    assert torch.equal(grad, expected_grad)  # ties: the first maximum in row-major order
    assert grad[0, 0, :2, :4].abs().sum() == 0  # windows with nothing above 0 pass nothing
    assert grad[0, 1, 0, 0] != 0 and grad[0, 1, 0, 1] == grad[0, 1, 1, 0] == 0


def test_nans_win_their_window_as_in_aten():
    nan = float("nan")
    x = torch.tensor(
        [[[[1.0, nan, 2.0, 3.0, nan, -1.0], [nan, 3.0, nan, 1.0, 5.0, 0.0]]]]
    )  # windows: two NaNs (the last one is ATen's), one NaN, one NaN beside a larger number
    out, grad = pool_and_grad(relu_max_pool2x2, x)
    expected_out, expected_grad = pool_and_grad(plain, x)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(grad, expected_grad)
    assert out.isnan().all()


def test_evaluation_takes_no_slot_and_gives_the_same_numbers():
    x = tied((2, 3, 9, 7))
    with torch.no_grad():
        assert torch.equal(relu_max_pool2x2(x), plain(x))


def saved_for_backward(fn, x: torch.Tensor) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Shapes and dtypes of the tensors autograd keeps for ``fn``'s backward pass."""
    saved = []

    def pack(tensor):
        saved.append((tuple(tensor.shape), tensor.dtype))
        return tensor

    x = x.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(x * 1.0)  # a non-leaf input, as a conv's output is
    return saved


def test_the_backward_pass_keeps_one_byte_per_output():
    x = torch.randn(2, 4, 9, 7)
    ours = saved_for_backward(relu_max_pool2x2, x)
    assert ours == [((2, 4, 4, 3), torch.uint8)]
    aten = saved_for_backward(plain, x)  # the full-size ReLU output and int64 indices
    assert ((2, 4, 9, 7), torch.float32) in aten and ((2, 4, 4, 3), torch.int64) in aten


def test_the_slot_says_which_input_passes_its_gradient():
    x = torch.tensor([[[[0.5, 2.0], [1.0, -3.0]], [[-1.0, -2.0], [-0.5, 0.0]]]])  # (1, 2, 2, 2)
    x.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        relu_max_pool2x2(x * 1.0)
    assert saved[0].flatten().tolist() == [1, NO_SLOT]  # top right; nothing above 0


def plain_conv1(x, weight, bias):
    return F.max_pool2d(F.relu(F.conv2d(x, weight, bias, padding=1)), 2)


def conv1_case(shape, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator) * 3
    x[0, 0, :6, :6] = 0.0  # every conv output there is the bias: ties
    x[-1, 0, -5:, -5:] = 1.0  # a constant patch: equal sums at every position
    weight = torch.randn(8, 1, 3, 3, generator=generator)
    bias = torch.randn(8, generator=generator)
    return x, weight, bias


def conv1_grads(fn, x, weight, bias, dtype=None):
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    out = fn(*leaves) if dtype is None else fn(*leaves, dtype)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    grads = torch.autograd.grad(out, leaves, grad.to(out.dtype))
    return out.detach(), grads


@pytest.mark.parametrize("shape", [(2, 1, 10, 8), (2, 1, 17, 11), (1, 1, 513, 129)])
def test_conv1_pooled_equals_conv_relu_max_pool_in_float32(shape):
    """The stencil sums the same nine products as the conv in another order, and the weight
    gradient sums over every position in another order: equal to float32 rounding, which for
    a sum of many terms is relative to the largest (the conv itself differs that much between
    CPU backends)."""
    x, weight, bias = conv1_case(shape)
    out, grads = conv1_grads(conv1_relu_max_pool2x2, x, weight, bias)
    expected_out, expected_grads = conv1_grads(plain_conv1, x, weight, bias)
    assert out.shape == expected_out.shape == (shape[0], 8, shape[2] // 2, shape[3] // 2)
    torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(grads, expected_grads, strict=True):  # input, weight, bias
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max())
    tied_grad = grads[0][0, 0, 1:5, 1:5]  # in the zero patch every window is a tie
    torch.testing.assert_close(tied_grad, expected_grads[0][0, 0, 1:5, 1:5], rtol=0, atol=1e-6)


def test_conv1_pooled_rounds_once_under_bf16_autocast():
    """Under autocast the plain block rounds its input and weights to bf16 before the conv; the
    pooled stencil computes in float32 and rounds its output once, so it is within one bf16
    rounding (2^-8 relative) of the float32 block, closer than the bf16 conv."""
    x, weight, bias = conv1_case((2, 1, 33, 17))
    exact = plain_conv1(x, weight, bias)
    weight.requires_grad_()  # training: the stencil (evaluation runs the conv itself)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = conv1_relu_max_pool2x2(x, weight, bias, torch.bfloat16).detach()
        theirs = plain_conv1(x, weight, bias).detach()
    assert ours.dtype == theirs.dtype == torch.bfloat16
    ours_error = (ours.float() - exact).abs()
    assert (ours_error <= exact.abs() * 2**-8 + 1e-6).all()
    assert ours_error.max() <= (theirs.float() - exact).abs().max()


def test_conv1_pooled_refuses_more_than_one_input_channel():
    with pytest.raises(ValueError, match="one input channel"):
        conv1_relu_max_pool2x2(torch.zeros(1, 2, 8, 8), torch.zeros(4, 2, 3, 3), torch.zeros(4))


def test_conv1_pooled_evaluation_gives_the_same_numbers():
    x, weight, bias = conv1_case((2, 1, 17, 11))
    with torch.no_grad():
        torch.testing.assert_close(
            conv1_relu_max_pool2x2(x, weight, bias), plain_conv1(x, weight, bias)
        )


@pytest.mark.slow  # two Inductor compiles
def test_both_compile_as_one_graph_with_the_eager_numbers():
    """torch.compile traces the custom autograd Functions whole (no graph break) and computes
    what eager computes, gradients included."""
    torch._dynamo.reset()
    try:
        pool = torch.compile(relu_max_pool2x2, fullgraph=True)
        x = tied((2, 3, 9, 7))
        out, grad = pool_and_grad(pool, x)
        expected_out, expected_grad = pool_and_grad(plain, x)
        assert torch.equal(out, expected_out) and torch.equal(grad, expected_grad)
        conv1 = torch.compile(conv1_relu_max_pool2x2, fullgraph=True)
        x, weight, bias = conv1_case((2, 1, 17, 11))
        out, grads = conv1_grads(conv1, x, weight, bias)
        expected_out, expected_grads = conv1_grads(plain_conv1, x, weight, bias)
        torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-5)
        for ours, theirs in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    finally:
        torch._dynamo.reset()
