"""The SE-CNN of Xu & Zhou (2020) for music genre classification, all of it in this file.

References:
1) Y. Xu and W. Zhou, "Deep music genres classification model based on CNN with Squeeze &
   Excitation Block", APSIPA ASC 2020 — the network (report table 4.1): five blocks of
   3x3 conv → ReLU → 2x2 max-pool → dropout 0.25 → SE block, channels (32, 64, 128, 256, 128),
   r = 16; flatten; one dense layer to the 10 genres.
2) J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu, "Squeeze-and-Excitation Networks", TPAMI 2019 —
   the SE block: global average pool → FC C→C/r + ReLU → FC C/r→C + sigmoid → channel scale.

Additions: the ratio r may be any positive real (Xu & Zhou's optimum is 31.43); the reduced
width is ``max(1, round(C / r))``, so no ratio gives a zero-width layer (r = 64 on 32 channels
gives 1). Which blocks carry an SE block is configurable (report table 5.1). The classifier
head is the report's flatten → dense (``head="dense"``, the default) or global average pooling
over frequency and time → one linear layer (``head="gap"``, after M. Lin, Q. Chen, S. Yan,
"Network In Network", ICLR 2014): ``C_last * n_classes`` weights instead of
``C_last * F' * T' * n_classes``, and any input size that survives the poolings. The network
standardises its input with the training set's mean and std, stored as buffers, so a
checkpoint carries everything prediction needs.

How the network runs, without changing what it computes (``SECNN(config, kernels, pad_se)``):
``kernels`` picks how a block's conv → ReLU → max-pool runs (:mod:`raysearch.ops`), and
``pad_se`` pads every SE bottleneck to C units with the extra ones held at zero, so that the
compiled graph is the same for every r (:class:`SEBlock`). State dicts, and so checkpoints,
are the unpadded network's either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from raysearch.errors import UserError
from raysearch.ops import KERNELS, conv1_relu_max_pool2x2, relu_max_pool2x2

DEFAULT_CHANNELS = (32, 64, 128, 256, 128)
HEADS = ("dense", "gap")  # see SECNN.head_input


class ModelConfigError(UserError):
    """A model setting is out of range; the message names it."""


@dataclass(frozen=True)
class ModelConfig:
    channels: tuple[int, ...] = DEFAULT_CHANNELS  # report table 4.1 / 5.3
    ratio: float = 16.0  # SE reduction ratio r (report table 5.2)
    se_blocks: tuple[int, ...] = (1, 2, 3, 4, 5)  # 1-based blocks with an SE block (table 5.1)
    dropout: float = 0.25  # after every max-pool
    n_classes: int = 10  # GTZAN genres
    input_shape: tuple[int, int] = (513, 129)  # (frequency bins, frames) of one 3 s segment
    input_mean: float = 0.0  # training-set dB mean, for standardisation
    input_std: float = 1.0
    head: str = "dense"  # dense: flatten → linear (table 4.1); gap: global average pool → linear

    def __post_init__(self) -> None:
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ModelConfigError(f"channels must be positive integers, got {self.channels}")
        if not self.ratio > 0:
            raise ModelConfigError(f"ratio must be a positive number, got {self.ratio}")
        bad = [b for b in self.se_blocks if not 1 <= b <= len(self.channels)]
        if bad:
            raise ModelConfigError(f"se_blocks must be in 1..{len(self.channels)}, got {bad}")
        if not 0 <= self.dropout < 1:
            raise ModelConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        freq, frames = self.input_shape
        if freq >> len(self.channels) < 1 or frames >> len(self.channels) < 1:
            raise ModelConfigError(
                f"input {self.input_shape} is too small for {len(self.channels)} 2x2 poolings"
            )
        if self.input_std <= 0:
            raise ModelConfigError(f"input_std must be positive, got {self.input_std}")
        if self.head not in HEADS:
            raise ModelConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("channels", "se_blocks", "input_shape"):
            if key in known:
                known[key] = tuple(int(v) for v in known[key])
        return cls(**known)


def reduced_width(channels: int, ratio: float) -> int:
    """Width of the SE bottleneck: C / r rounded, at least 1."""
    return max(1, round(channels / ratio))


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al.): rescale each channel by a learned gate in (0, 1).

    ``padded``: the bottleneck has C units, of which the first ``max(1, round(C / r))`` are
    the network's and the rest are held at zero (their weights start at 0, their activations
    are masked, so their gradients are 0 and Adam, weight decay included, leaves them at 0).
    The layers' shapes then no longer depend on r, so one compiled graph serves every ratio.
    The real part is initialised as the unpadded block's, from the same random draws; state
    dicts hold only the real part (a padded block loads an unpadded one's and vice versa)."""

    def __init__(self, channels: int, ratio: float, padded: bool = False) -> None:
        super().__init__()
        self.hidden = reduced_width(channels, ratio)
        self.reduce = nn.Linear(channels, self.hidden)
        self.expand = nn.Linear(self.hidden, channels)
        self.padded = padded and self.hidden < channels  # r <= 1: C / r units, nothing to pad
        self.padding = 0  # parameters that are padding, not the network's
        if self.padded:
            self._pad_to(channels)

    def _pad_to(self, width: int) -> None:
        extra = width - self.hidden
        with torch.no_grad():  # zeros after the real units: no random draw, none shifted
            self.reduce.weight = nn.Parameter(F.pad(self.reduce.weight, (0, 0, 0, extra)))
            self.reduce.bias = nn.Parameter(F.pad(self.reduce.bias, (0, extra)))
            self.expand.weight = nn.Parameter(F.pad(self.expand.weight, (0, extra)))
        self.reduce.out_features = self.expand.in_features = width
        self.register_buffer("live", torch.arange(width) < self.hidden, persistent=False)
        self.padding = extra * (2 * self.expand.out_features + 1)
        self.register_state_dict_post_hook(_without_padding)
        self.register_load_state_dict_pre_hook(_with_padding)

    def excite(self, squeezed: torch.Tensor) -> torch.Tensor:
        """The gate (B, C) from the channel means (B, C): the only layers whose width
        depends on r (``compile_model(share_se=True)`` keeps them out of compiled graphs)."""
        hidden = F.relu(self.reduce(squeezed))  # (B, C / r), or (B, C) padded
        if self.padded:
            hidden = torch.where(self.live, hidden, 0)  # the padding stays 0, and so its grads
        return torch.sigmoid(self.expand(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3))  # (B, C)
        return x * self.excite(squeezed)[:, :, None, None]  # (B, C, H, W)


def _without_padding(block: SEBlock, state_dict: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook of a padded SE block: its real units only (copies, so that a saved
    checkpoint does not carry the padded storage)."""
    real = block.hidden
    for key, cut in (("reduce.weight", (slice(0, real),)), ("reduce.bias", (slice(0, real),)),
                     ("expand.weight", (slice(None), slice(0, real)))):  # fmt: skip
        if prefix + key in state_dict:
            state_dict[prefix + key] = state_dict[prefix + key][cut].clone()


def _with_padding(block: SEBlock, state_dict: dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook of a padded SE block: an unpadded block's tensors, zero-padded."""
    shapes = {"reduce.weight": block.reduce.weight.shape, "reduce.bias": block.reduce.bias.shape,
              "expand.weight": block.expand.weight.shape}  # fmt: skip
    for key, shape in shapes.items():
        value = state_dict.get(prefix + key)
        if value is None or value.shape == shape:
            continue
        padded = value.new_zeros(shape)
        padded[tuple(slice(0, n) for n in value.shape)] = value
        state_dict[prefix + key] = padded


class ConvBlock(nn.Module):
    """3x3 conv (same padding) → ReLU → 2x2 max-pool → dropout → optional SE block.

    ``kernels`` (:data:`raysearch.ops.KERNELS`): ``aten`` runs ``F.relu`` and
    ``F.max_pool2d``; ``select`` runs :func:`raysearch.ops.relu_max_pool2x2`; ``select-conv1``
    also computes a one-input-channel conv inside the pooling
    (:func:`raysearch.ops.conv1_relu_max_pool2x2`), ``triton-conv1`` the same in a Triton
    kernel pair (:mod:`raysearch.triton_conv1`, CUDA). The same function each way."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        dropout: float,
        ratio: float | None,
        kernels: str = "aten",
        pad_se: bool = False,
    ) -> None:
        super().__init__()
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.se = SEBlock(c_out, ratio, pad_se) if ratio is not None else nn.Identity()
        one_channel = kernels in ("select-conv1", "triton-conv1")
        self.kernels = "select" if one_channel and c_in != 1 else kernels
        self._triton_conv1 = None
        if self.kernels == "triton-conv1":  # imported here: Triton only where it is asked for
            from raysearch.triton_conv1 import triton_conv1_relu_max_pool2x2

            self._triton_conv1 = triton_conv1_relu_max_pool2x2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._triton_conv1 is not None:  # (B, 1, H, W) → (B, C_out, H/2, W/2), one kernel
            weight = self.conv.weight  # NHWC output when the module is channels_last
            nhwc = weight.stride(1) == 1 and weight.shape[-1] * weight.shape[-2] > 1
            x = self._triton_conv1(x, weight, self.conv.bias, _autocast_dtype(x), nhwc)
        elif self.kernels == "select-conv1":  # (B, 1, H, W) → (B, C_out, H/2, W/2), one pass
            x = conv1_relu_max_pool2x2(x, self.conv.weight, self.conv.bias, _autocast_dtype(x))
        elif self.kernels == "select":
            x = relu_max_pool2x2(self.conv(x))  # (B, C, H, W) → (B, C_out, H/2, W/2)
        else:
            x = F.max_pool2d(F.relu(self.conv(x)), 2)  # (B, C, H, W) → (B, C_out, H/2, W/2)
        return self.se(self.dropout(x))


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast gives a conv's output on ``x``'s device, or None outside autocast."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


class GlobalAveragePool(nn.Module):
    """Mean over frequency and time: (B, C, H, W) → (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class SECNN(nn.Module):
    """Five conv blocks with SE blocks, then the head: flatten or global average pool, one
    linear layer (softmax lives in the loss). ``kernels`` and ``pad_se``: how it runs
    (:class:`ConvBlock`, :class:`SEBlock`), not what it computes."""

    def __init__(self, config: ModelConfig, kernels: str = "aten", pad_se: bool = False) -> None:
        super().__init__()
        self.config = config
        widths = (1, *config.channels)
        self.blocks = nn.Sequential(
            *(
                ConvBlock(
                    widths[i],
                    widths[i + 1],
                    config.dropout,
                    config.ratio if i + 1 in config.se_blocks else None,
                    kernels,
                    pad_se,
                )
                for i in range(len(config.channels))
            )
        )
        self.pool, features = self.head_input(config)  # no parameters: state_dict keys as before
        self.head = nn.Linear(features, config.n_classes)
        self.register_buffer("input_mean", torch.tensor(float(config.input_mean)))
        self.register_buffer("input_std", torch.tensor(float(config.input_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for dB spectrogram segments (B, 1, F, T) or (B, F, T)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, F, T) → (B, 1, F, T)
        x = (x.float() - self.input_mean) / self.input_std
        x = self.blocks(x)  # (B, 1, 513, 129) → (B, 128, 16, 4) with the defaults
        return self.head(self.pool(x))  # dense: (B, 128*16*4) → (B, 10); gap: (B, 128) → (B, 10)

    @staticmethod
    def head_input(config: ModelConfig) -> tuple[nn.Module, int]:
        """The head's pooling module and its number of output features per segment."""
        if config.head == "gap":
            return GlobalAveragePool(), config.channels[-1]
        freq, frames = config.input_shape
        for _ in config.channels:  # each 2x2 max-pool floors odd sizes
            freq, frames = freq // 2, frames // 2
        return nn.Flatten(1), config.channels[-1] * freq * frames


def count_macs(config: ModelConfig) -> int:
    """Multiply-adds of one segment's forward pass: the convolutions (same padding, so each
    runs at its block's input size), the SE blocks' two layers and the head; the poolings,
    ReLUs, gates and standardisation add no multiply-adds. The same count as torch's
    ``FlopCounterMode`` / 2 (tests/test_front.py)."""
    freq, frames = config.input_shape
    macs, c_in = 0, 1
    for block, c_out in enumerate(config.channels, start=1):
        macs += c_in * c_out * 9 * freq * frames  # 3x3 conv: (1, C_in, F, T) → (1, C_out, F, T)
        freq, frames = freq // 2, frames // 2  # 2x2 max-pool
        if block in config.se_blocks:
            macs += 2 * c_out * reduced_width(c_out, config.ratio)  # C → C/r → C
        c_in = c_out
    _, features = SECNN.head_input(config)
    return macs + features * config.n_classes


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of the network, not counting a padded SE block's padding."""
    padding = sum(m.padding for m in model.modules() if isinstance(m, SEBlock))
    return sum(p.numel() for p in model.parameters() if p.requires_grad) - padding
