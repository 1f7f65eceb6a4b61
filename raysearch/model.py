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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from raysearch.errors import UserError

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
    """Squeeze-and-excitation (Hu et al.): rescale each channel by a learned gate in (0, 1)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = reduced_width(channels, ratio)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def excite(self, squeezed: torch.Tensor) -> torch.Tensor:
        """The gate (B, C) from the channel means (B, C): the only layers whose width
        depends on r (``compile_model(share_se=True)`` keeps them out of compiled graphs)."""
        return torch.sigmoid(self.expand(F.relu(self.reduce(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3))  # (B, C)
        return x * self.excite(squeezed)[:, :, None, None]  # (B, C, H, W)


class ConvBlock(nn.Module):
    """3x3 conv (same padding) → ReLU → 2x2 max-pool → dropout → optional SE block."""

    def __init__(self, c_in: int, c_out: int, dropout: float, ratio: float | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.se = SEBlock(c_out, ratio) if ratio is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)  # (B, C, H, W) → (B, C_out, H/2, W/2)
        return self.se(self.dropout(x))


class GlobalAveragePool(nn.Module):
    """Mean over frequency and time: (B, C, H, W) → (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class SECNN(nn.Module):
    """Five conv blocks with SE blocks, then the head: flatten or global average pool, one
    linear layer (softmax lives in the loss)."""

    def __init__(self, config: ModelConfig) -> None:
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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
