"""The SE-CNN's conv → ReLU → 2x2 max-pool, written for the compiler: the same function as
``F.max_pool2d(F.relu(conv(x)), 2)``, with less memory traffic once ``torch.compile`` fuses it.

* :func:`relu_max_pool2x2`: ReLU and max commute (``max(relu(x)) == relu(max(x))``), so the
  window's maximum is taken first and the ReLU runs on the quarter-size result. What the
  backward pass keeps is one byte per output, the window slot of the maximum (4: none, the
  output is 0), instead of ATen's int64 indices and the full-size ReLU output; its backward is
  an elementwise select (``where(slot == k, grad, 0)``) instead of ATen's max-pool backward.
* :func:`conv1_relu_max_pool2x2`: block 1's conv has one input channel, so each of the four
  window values is a 9-tap stencil of the input, computed at the pooled resolution: the
  full-size conv output never exists, and the weight gradient is a reduction of the selected
  gradient against the input.

Both follow ATen's max-pool exactly: odd sizes floor (513 → 256), the first maximum of a
window in row-major order wins a tie, a NaN wins over numbers (the last NaN of a window, as
ATen's CPU and CUDA kernels compare), and a window whose maximum is 0 or less passes no
gradient (``F.relu``'s gradient at 0 is 0). ``tests/test_ops.py`` checks forward and gradients
against the plain PyTorch block; docs/performance.md says what each costs on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NO_SLOT = 4  # the window's maximum is 0 or less: the ReLU passes no gradient
# how a block's conv → ReLU → max-pool runs; triton-conv1: raysearch.triton_conv1
KERNELS = ("aten", "select", "select-conv1", "triton-conv1")


def _quarters(x: torch.Tensor) -> list[torch.Tensor]:
    """The four values of every 2x2 window, row-major: (B, C, H, W) → 4 x (B, C, H/2, W/2)."""
    rows, cols = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # floor: a last odd row/column drops
    return [x[..., dy:rows:2, dx:cols:2] for dy in (0, 1) for dx in (0, 1)]


def _relu_max(candidates: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """ReLU of the largest of four values, and the slot (uint8) whose gradient passes."""
    best = candidates[0]
    slot = torch.zeros_like(best, dtype=torch.uint8)
    for k in (1, 2, 3):  # ATen's rule: replace on a strictly larger value or on a NaN
        take = (candidates[k] > best) | candidates[k].isnan()
        best = torch.where(take, candidates[k], best)
        slot = torch.where(take, k, slot)
    live = (best > 0) | best.isnan()  # relu(NaN) is NaN and passes its gradient
    return best.relu(), torch.where(live, slot, NO_SLOT).to(torch.uint8)


def _upsample(t: torch.Tensor) -> torch.Tensor:
    """Each value repeated over its 2x2 window: (B, C, H/2, W/2) → (B, C, H, W) (even H, W)."""
    b, c, h, w = t.shape
    return t[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


def _slot_grid(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """The slot of every position in its window: 0 1 / 2 3, repeated, (rows, cols) uint8."""
    row = torch.arange(rows, device=device) % 2 * 2
    col = torch.arange(cols, device=device) % 2
    return (row[:, None] + col[None, :]).to(torch.uint8)


class _ReluMaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, slot = _relu_max(_quarters(x))
        ctx.save_for_backward(slot)
        ctx.size = x.shape[-2:]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (slot,) = ctx.saved_tensors
        rows, cols = slot.shape[-2] * 2, slot.shape[-1] * 2
        selected = torch.where(  # (B, C, H/2, W/2) → (B, C, H, W): the select, one pass
            _upsample(slot) == _slot_grid(rows, cols, grad.device), _upsample(grad), 0
        )
        height, width = ctx.size
        return F.pad(selected, (0, width - cols, 0, height - rows))  # odd sizes: zero edge


class _ReluMax4(torch.autograd.Function):
    """ReLU of the elementwise maximum of a 2x2 window's four values, given as four tensors."""

    @staticmethod
    def forward(ctx, *candidates: torch.Tensor) -> torch.Tensor:
        out, slot = _relu_max(list(candidates))
        ctx.save_for_backward(slot)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        (slot,) = ctx.saved_tensors
        return tuple(torch.where(slot == k, grad, 0) for k in range(4))


def relu_max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(F.relu(x), 2)``: (B, C, H, W) → (B, C, H/2, W/2), floored."""
    if not torch.is_grad_enabled() or not x.requires_grad:  # evaluation: no slot to keep
        rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
        windows = x[..., : rows * 2, : cols * 2].unflatten(-1, (cols, 2)).unflatten(-3, (rows, 2))
        return windows.amax(dim=(-3, -1)).relu()  # (B, C, H/2, 2, W/2, 2) → (B, C, H/2, W/2)
    return _ReluMaxPool2x2.apply(x)


def conv1_relu_max_pool2x2(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``F.max_pool2d(F.relu(F.conv2d(x, weight, bias, padding=1)), 2)`` for one input
    channel: (B, 1, H, W) → (B, C, H/2, W/2), computed in float32 and returned as ``dtype``
    (the conv's dtype under autocast; default ``x``'s). Without gradients (evaluation, which
    runs eagerly) the conv runs as a conv: the stencil pays only where it is compiled."""
    if x.shape[1] != 1 or weight.shape[1:] != (1, 3, 3):
        raise ValueError(f"one input channel and 3x3 kernels expected, got {tuple(weight.shape)}")
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in (x, weight, bias)):
        return relu_max_pool2x2(F.conv2d(x, weight, bias, padding=1)).to(dtype or x.dtype)
    rows, cols = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    padded = F.pad(x.float(), (1, 1, 1, 1))  # (B, 1, H + 2, W + 2): the conv's zero padding
    taps = weight.float().flatten(1)  # (C, 9)
    candidates = []
    for dy in (0, 1):  # the window's slot: which conv output position, at stride 2
        for dx in (0, 1):
            value = bias.float().view(1, -1, 1, 1)
            for tap in range(9):
                ky, kx = divmod(tap, 3)
                shifted = padded[..., dy + ky : dy + ky + rows : 2, dx + kx : dx + kx + cols : 2]
                value = value + taps[:, tap].view(1, -1, 1, 1) * shifted  # (B, C, H/2, W/2)
            candidates.append(value)
    return _ReluMax4.apply(*candidates).to(dtype or x.dtype)
