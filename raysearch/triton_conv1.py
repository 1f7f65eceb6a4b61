"""Block 1's conv → ReLU → 2x2 max-pool as a Triton kernel pair (``kernels: triton-conv1``).

Block 1 has one input channel. On an H200 its compiled ``select`` step still spends about 20 %
of the step's GPU time there (results/gpu-h200-synthetic/bench/gpu_step_profile.md): cuDNN's
generic one-input-channel conv (0.24 ms per step) and the NCHW → NHWC conversions around it
(0.23 ms); and ``select-conv1``, the same stencil written for Inductor, lost 2.7 ms per step to
Inductor's weight-gradient reduction. This pair computes what
:func:`raysearch.ops.conv1_relu_max_pool2x2` computes, without either:

* forward (:func:`_forward_kernel`): one program per (image, block of pooled pixels), every
  output channel at once. The four 3x3 stencils of a 2x2 window are computed from the input
  at the pooled resolution (the full-size conv output never exists), their maximum taken by
  ATen's rule (first maximum in row-major order, a NaN wins), ReLU'd, and written in the
  layout the next block's conv reads (NHWC when the module is channels_last: no conversion),
  as autocast's dtype; one byte per output keeps the window's slot (4: no gradient passes).
* backward (:func:`_weight_grad_kernel`): the weight and bias gradients as per-program
  partial sums of the selected gradient against the input (float32, no atomics: the sum over
  programs runs in torch afterwards, deterministic). The input's gradient (data needs none)
  comes from torch when asked.

Both are ``torch.library`` custom ops, with fake implementations, so ``torch.compile`` keeps
them whole inside its graph. They run on CUDA, and on CPU tensors only under Triton's
interpreter (``TRITON_INTERPRET=1`` before Triton is imported), which is how
``tests/test_triton_conv1.py`` checks them against the plain PyTorch block. What they gain is
a GPU measurement (``benchmarks/gpu_step_profile.py``, ``gpu_bench.py``: docs/performance.md).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from raysearch.ops import NO_SLOT

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"  # read by Triton at import, as here
BLOCK_PIXELS = 128  # pooled pixels per program (with every output channel)
TAPS = 9  # a 3x3 kernel on one input channel
PARTIALS = TAPS + 1  # the nine weight gradients and the bias gradient, per program


@triton.jit
def _stencil(x_image, oh, ow, dy: tl.constexpr, dx: tl.constexpr, H, W, sxh, sxw,
             w_ptr, bias, c, mask_c, mask_p,
             BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):  # fmt: skip
    """Window slot (dy, dx) of pooled pixels (oh, ow): the 3x3 conv (zero padding 1) at
    full-size position (2 oh + dy, 2 ow + dx), every channel: (BLOCK_C, BLOCK_P) float32."""
    acc = bias[:, None] + tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.float32)
    for ky in tl.static_range(3):
        for kx in tl.static_range(3):
            ih = 2 * oh + dy + ky - 1
            iw = 2 * ow + dx + kx - 1
            inside = mask_p & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            value = tl.load(x_image + ih * sxh + iw * sxw, mask=inside, other=0.0)
            tap = tl.load(w_ptr + c * 9 + ky * 3 + kx, mask=mask_c, other=0.0)
            acc = acc + tap[:, None] * value.to(tl.float32)[None, :]
    return acc


@triton.jit
def _forward_kernel(x_ptr, w_ptr, b_ptr, out_ptr, slot_ptr,
                    C, H, W, HO, WO,
                    sxb, sxh, sxw,
                    sob, soc, soh, sow,
                    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, NONE: tl.constexpr,
                    OUT_BF16: tl.constexpr):  # fmt: skip
    """One image's block of pooled pixels, every channel: the output and the window slot."""
    pixels = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    image = tl.program_id(1)
    mask_p = pixels < HO * WO
    oh, ow = pixels // WO, pixels % WO
    c = tl.arange(0, BLOCK_C)
    mask_c = c < C
    bias = tl.load(b_ptr + c, mask=mask_c, other=0.0)
    x_image = x_ptr + image * sxb
    best = _stencil(
        x_image, oh, ow, 0, 0, H, W, sxh, sxw, w_ptr, bias, c, mask_c, mask_p, BLOCK_C, BLOCK_P
    )
    slot = tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.int32)
    # ATen's rule: a later window value replaces the maximum when strictly larger, or a NaN
    value = _stencil(
        x_image, oh, ow, 0, 1, H, W, sxh, sxw, w_ptr, bias, c, mask_c, mask_p, BLOCK_C, BLOCK_P
    )
    take = (value > best) | (value != value)
    best, slot = tl.where(take, value, best), tl.where(take, 1, slot)
    value = _stencil(
        x_image, oh, ow, 1, 0, H, W, sxh, sxw, w_ptr, bias, c, mask_c, mask_p, BLOCK_C, BLOCK_P
    )
    take = (value > best) | (value != value)
    best, slot = tl.where(take, value, best), tl.where(take, 2, slot)
    value = _stencil(
        x_image, oh, ow, 1, 1, H, W, sxh, sxw, w_ptr, bias, c, mask_c, mask_p, BLOCK_C, BLOCK_P
    )
    take = (value > best) | (value != value)
    best, slot = tl.where(take, value, best), tl.where(take, 3, slot)
    live = (best > 0) | (best != best)  # relu(NaN) is NaN and passes its gradient
    out = tl.where(live, best, 0.0)
    slot = tl.where(live, slot, NONE)
    mask = mask_c[:, None] & mask_p[None, :]
    where = image * sob + c[:, None] * soc + oh[None, :] * soh + ow[None, :] * sow
    if OUT_BF16:  # rounded to nearest even here: torch's rounding, on a GPU and interpreted
        bits = out.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        rounded = tl.where(out != out, (bits >> 16) | 0x40, rounded)  # a NaN stays a NaN
        tl.store(out_ptr + where, rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(out_ptr + where, out.to(out_ptr.dtype.element_ty), mask=mask)
    slots = image * C * HO * WO + c[:, None] * HO * WO + pixels[None, :]  # contiguous NCHW
    tl.store(slot_ptr + slots, slot.to(tl.uint8), mask=mask)


@triton.jit
def _tap_grad(x_image, oh, ow, ky: tl.constexpr, kx: tl.constexpr, H, W, sxh, sxw, mask_p,
              g0, g1, g2, g3):  # fmt: skip
    """Σ over the block's pixels of each slot's selected gradient times the input that tap
    (ky, kx) read for that slot: one weight's gradient, every channel (BLOCK_C,). The four
    slots' products are added elementwise first, then reduced once."""
    products = tl.zeros_like(g0)
    for dy in tl.static_range(2):
        for dx in tl.static_range(2):
            ih = 2 * oh + dy + ky - 1
            iw = 2 * ow + dx + kx - 1
            inside = mask_p & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            value = tl.load(x_image + ih * sxh + iw * sxw, mask=inside, other=0.0)
            value = value.to(tl.float32)[None, :]
            if dy * 2 + dx == 0:
                products += g0 * value
            elif dy * 2 + dx == 1:
                products += g1 * value
            elif dy * 2 + dx == 2:
                products += g2 * value
            else:
                products += g3 * value
    return tl.sum(products, axis=1)


@triton.jit
def _weight_grad_kernel(x_ptr, grad_ptr, slot_ptr, partial_ptr,
                        C, H, W, HO, WO,
                        sxb, sxh, sxw,
                        sgb, sgc, sgh, sgw,
                        BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
                        NONE: tl.constexpr):  # fmt: skip
    """One image's block of pooled pixels: its share of the nine weight gradients and the
    bias gradient of every channel, written to its own row of ``partial`` (programs, C, 10)."""
    pixels = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    image = tl.program_id(1)
    mask_p = pixels < HO * WO
    oh, ow = pixels // WO, pixels % WO
    c = tl.arange(0, BLOCK_C)
    mask_c = c < C
    mask = mask_c[:, None] & mask_p[None, :]
    where = image * sgb + c[:, None] * sgc + oh[None, :] * sgh + ow[None, :] * sgw
    grad = tl.load(grad_ptr + where, mask=mask, other=0.0).to(tl.float32)
    slots = image * C * HO * WO + c[:, None] * HO * WO + pixels[None, :]
    slot = tl.load(slot_ptr + slots, mask=mask, other=NONE).to(tl.int32)
    g0 = tl.where(slot == 0, grad, 0.0)
    g1 = tl.where(slot == 1, grad, 0.0)
    g2 = tl.where(slot == 2, grad, 0.0)
    g3 = tl.where(slot == 3, grad, 0.0)
    x_image = x_ptr + image * sxb
    row = partial_ptr + (tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)) * C * 10
    for ky in tl.static_range(3):
        for kx in tl.static_range(3):
            total = _tap_grad(x_image, oh, ow, ky, kx, H, W, sxh, sxw, mask_p, g0, g1, g2, g3)
            tl.store(row + c * 10 + ky * 3 + kx, total, mask=mask_c)
    bias = tl.sum(tl.where(slot < NONE, grad, 0.0), axis=1)
    tl.store(row + c * 10 + 9, bias, mask=mask_c)


def _check_device(x: torch.Tensor) -> None:
    if x.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"kernels triton-conv1 runs on CUDA devices (or on CPU tensors under "
            f"TRITON_INTERPRET=1), got a {x.device.type} tensor"
        )


def _grid(x: torch.Tensor, pooled: int) -> tuple[int, int]:
    return triton.cdiv(pooled, BLOCK_PIXELS), x.shape[0]


def _output(x: torch.Tensor, channels: int, dtype: torch.dtype, channels_last: bool):
    """The (B, C, H/2, W/2) output, NHWC when the next conv reads NHWC, and its slots."""
    shape = (x.shape[0], channels, x.shape[-2] // 2, x.shape[-1] // 2)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(shape, dtype=dtype, device=x.device, memory_format=layout)
    return out, torch.empty(shape, dtype=torch.uint8, device=x.device)


@torch.library.custom_op("raysearch::conv1_pool", mutates_args=())
def conv1_pool(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype, nhwc: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) → the (B, C, H/2, W/2) output as ``dtype`` (NHWC when ``nhwc``) and its
    window slots (uint8, NCHW)."""
    _check_device(x)
    channels = weight.shape[0]
    out, slot = _output(x, channels, dtype, nhwc)
    pooled = out.shape[-2] * out.shape[-1]
    if out.numel():
        _forward_kernel[_grid(x, pooled)](
            x, weight.reshape(channels, TAPS).float().contiguous(), bias.float().contiguous(),
            out, slot, channels, x.shape[-2], x.shape[-1], out.shape[-2], out.shape[-1],
            x.stride(0), x.stride(2), x.stride(3), *out.stride(),
            BLOCK_C=triton.next_power_of_2(channels), BLOCK_P=BLOCK_PIXELS, NONE=NO_SLOT,
            OUT_BF16=dtype == torch.bfloat16,
        )  # fmt: skip
    return out, slot


@conv1_pool.register_fake
def _(x, weight, bias, dtype, nhwc):
    return _output(x, weight.shape[0], dtype, nhwc)


@torch.library.custom_op("raysearch::conv1_pool_weight_grad", mutates_args=())
def conv1_pool_weight_grad(
    grad: torch.Tensor, slot: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight (C, 1, 3, 3) and bias (C,) gradients, float32, of :func:`conv1_pool`'s output
    given its gradient ``grad`` and its slots."""
    _check_device(x)
    channels, pooled = slot.shape[1], slot.shape[-2] * slot.shape[-1]
    grid = _grid(x, pooled)
    partial = torch.zeros(grid[0] * grid[1], channels, PARTIALS, device=x.device)
    if slot.numel():
        _weight_grad_kernel[grid](
            x, grad, slot, partial, channels, x.shape[-2], x.shape[-1],
            slot.shape[-2], slot.shape[-1], x.stride(0), x.stride(2), x.stride(3),
            *grad.stride(),
            BLOCK_C=triton.next_power_of_2(channels), BLOCK_P=BLOCK_PIXELS, NONE=NO_SLOT,
        )  # fmt: skip
    total = partial.sum(dim=0)  # (C, 10): the programs' shares, summed in a fixed order
    return total[:, :TAPS].reshape(channels, 1, 3, 3).contiguous(), total[:, TAPS].contiguous()


@conv1_pool_weight_grad.register_fake
def _(grad, slot, x):
    channels = slot.shape[1]
    return x.new_empty((channels, 1, 3, 3), dtype=torch.float32), x.new_empty(
        (channels,), dtype=torch.float32
    )


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, _, _ = inputs
    _, slot = output
    ctx.mark_non_differentiable(slot)
    ctx.save_for_backward(x, weight, slot)
    ctx.weight_dtype, ctx.bias_dtype = weight.dtype, bias.dtype


def _backward(ctx, grad, _slot_grad):
    x, weight, slot = ctx.saved_tensors
    grad_weight, grad_bias = conv1_pool_weight_grad(grad, slot, x)
    grad_x = None
    if ctx.needs_input_grad[0]:  # data needs none; torch computes it when asked
        grad_x = _input_grad(grad, slot, x, weight)
    return grad_x, grad_weight.to(ctx.weight_dtype), grad_bias.to(ctx.bias_dtype), None, None


conv1_pool.register_autograd(_backward, setup_context=_setup_context)


def _input_grad(grad, slot, x, weight) -> torch.Tensor:
    """The input's gradient: the selected gradient at full size through the conv's input
    gradient (``torch.nn.grad.conv2d_input``), in float32 and returned as ``x``'s dtype."""
    b, c, rows, cols = slot.shape
    up = (
        slot[:, :, :, None, :, None]
        .expand(b, c, rows, 2, cols, 2)
        .reshape(b, c, 2 * rows, 2 * cols)
    )
    g = grad.float()[:, :, :, None, :, None].expand(b, c, rows, 2, cols, 2)
    g = g.reshape(b, c, 2 * rows, 2 * cols)
    row = torch.arange(2 * rows, device=x.device) % 2 * 2
    col = torch.arange(2 * cols, device=x.device) % 2
    selected = torch.where(up == (row[:, None] + col[None, :]), g, 0.0)
    selected = torch.nn.functional.pad(
        selected, (0, x.shape[-1] - 2 * cols, 0, x.shape[-2] - 2 * rows)
    )
    return torch.nn.grad.conv2d_input(x.shape, weight.float(), selected, padding=1).to(x.dtype)


def triton_conv1_relu_max_pool2x2(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dtype: torch.dtype | None = None,
    nhwc: bool = False,
) -> torch.Tensor:
    """``F.max_pool2d(F.relu(F.conv2d(x, weight, bias, padding=1)), 2)`` for one input
    channel: (B, 1, H, W) → (B, C, H/2, W/2) as ``dtype`` (default ``x``'s), NHWC when
    ``nhwc``; computed in float32 (the same function as
    :func:`raysearch.ops.conv1_relu_max_pool2x2`)."""
    if x.shape[1] != 1 or weight.shape[1:] != (1, 3, 3):
        raise ValueError(f"one input channel and 3x3 kernels expected, got {tuple(weight.shape)}")
    out, _ = conv1_pool(x, weight, bias, dtype or x.dtype, nhwc)
    return out
