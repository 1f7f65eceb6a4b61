"""Training-time augmentation of spectrogram batches already on the device.

References:
1) D. S. Park, W. Chan, Y. Zhang, C.-C. Chiu, B. Zoph, E. D. Cubuk, Q. V. Le, "SpecAugment:
   A Simple Data Augmentation Method for Automatic Speech Recognition", Interspeech 2019 —
   frequency and time masking only (no time warping): each of ``masks`` bands has a width
   drawn uniformly from [0, W] and a start drawn uniformly from [0, size - width], so a band
   never leaves the spectrogram.
2) H. Zhang, M. Cisse, Y. N. Dauphin, D. Lopez-Paz, "mixup: Beyond Empirical Risk
   Minimization", ICLR 2018 — a batch mixed with a random permutation of itself,
   λ ~ Beta(α, α), loss λ·CE(y_a) + (1 - λ)·CE(y_b).

Everything is vectorised over the batch and stays on the batch's device: no loop over items,
no ``.item()``, no host read: one call is a few small kernels on the band positions and a few
element-wise passes over the batch. Nothing writes into its input (a batch may share memory
with the resident training split). Augmentation belongs to training only:
:func:`augment_batch` with ``training=False`` returns its input as it is, and evaluation never
calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    freq_masks: int = 0  # frequency bands masked per segment (Park et al.'s m_F)
    freq_width: int = 0  # largest band width in frequency bins (their F); widths in [0, F]
    time_masks: int = 0  # time bands masked per segment (m_T)
    time_width: int = 0  # largest band width in frames (their T)
    mixup_alpha: float = 0.0  # Beta(α, α) for mixup's λ; 0 = no mixup

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise ValueError(f"invalid augmentation setting {name}={value!r}: need an int >= 0")
        alpha = self.mixup_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 <= alpha < math.inf:
            raise ValueError(
                f"invalid augmentation setting mixup_alpha={alpha!r}: need a finite number >= 0"
            )

    @classmethod
    def of(cls, settings: object) -> AugmentConfig:
        """The five augmentation fields read from any object that carries them (a
        ``TrainConfig``)."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    @property
    def masking(self) -> bool:
        """Whether SpecAugment masks anything (a count and a width both above 0)."""
        return bool(self.freq_masks and self.freq_width) or bool(
            self.time_masks and self.time_width
        )

    @property
    def enabled(self) -> bool:
        """Whether :func:`augment_batch` changes a training batch at all."""
        return self.masking or self.mixup_alpha > 0


def mask_bands(
    batch: int,
    size: int,
    masks: int,
    max_width: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Starts and widths (B, masks) int64 of ``masks`` bands per item along an axis of
    ``size``: width uniform in [0, min(max_width, size)], start uniform in [0, size - width]."""
    max_width = min(max_width, size)
    widths = torch.randint(
        0, max_width + 1, (batch, masks), device=device, generator=generator
    )  # (B, M)
    uniform = torch.rand((batch, masks), device=device, generator=generator)  # [0, 1)
    # float rounding can lift uniform * (size - width + 1) to its upper end: clamp it back
    starts = (uniform * (size - widths + 1)).long().clamp_(max=size - widths)  # (B, M)
    return starts, widths


def band_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) bool, True inside any of the bands ``starts``/``widths`` (B, M)."""
    position = torch.arange(size, device=starts.device)  # (size,)
    start, end = starts[..., None], (starts + widths)[..., None]  # (B, M, 1)
    return ((position >= start) & (position < end)).any(dim=1)  # (B, M, size) → (B, size)


def spec_augment(
    x: torch.Tensor,
    freq_masks: int,
    freq_width: int,
    time_masks: int,
    time_width: int,
    fill: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SpecAugment's frequency and time masking of a batch (B, F, T) or (B, 1, F, T).

    Every item gets its own ``freq_masks`` frequency bands (widths up to ``freq_width``) and
    ``time_masks`` time bands (widths up to ``time_width``); masked values become ``fill``.
    ``fill=None`` uses the batch's mean (a device scalar, never read by the host). Prefer the
    training set's mean in the input's units (``ModelConfig.input_mean``, raw dB): the model
    standardises its input with that mean, so a masked value reaches the network as 0, which
    is what Park et al. mask with (their features are normalised to mean 0); the batch mean
    only approximates it and moves from batch to batch. ``generator`` must live on
    ``x.device``. Returns a new tensor of ``x``'s shape and dtype, or ``x`` itself when no
    band can be masked (a count or a width of 0 on both axes).
    """
    freq_on, time_on = freq_masks > 0 and freq_width > 0, time_masks > 0 and time_width > 0
    if not (freq_on or time_on):
        return x
    batch, freq, frames = x.shape[0], x.shape[-2], x.shape[-1]
    masked = None
    if freq_on:
        bands = mask_bands(batch, freq, freq_masks, freq_width, x.device, generator)
        masked = band_mask(*bands, freq)[:, :, None]  # (B, F, 1)
    if time_on:
        bands = mask_bands(batch, frames, time_masks, time_width, x.device, generator)
        in_time = band_mask(*bands, frames)[:, None, :]  # (B, 1, T)
        masked = in_time if masked is None else masked | in_time  # (B, F, T)
    masked = masked.view(batch, *([1] * (x.dim() - 3)), *masked.shape[1:])  # broadcasts like x
    if fill is None:
        fill = x.mean(dtype=torch.float32)
    if isinstance(fill, torch.Tensor):
        fill = fill.to(device=x.device, dtype=x.dtype)
    return torch.where(masked, fill, x)


def beta_sample(
    alpha: float, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw () float32 from Beta(α, α) on ``device``: G1 / (G1 + G2), G1, G2 ~ Gamma(α).

    Each Gamma(α) is drawn as Gamma(α + 1) · U^(1/α) and kept as its logarithm, so a small α
    (whose draws underflow even float64, and make ``torch.distributions.Beta`` return 0.5 for
    0/0) still gives λ near 0 or 1; ``torch.distributions`` also takes no generator.
    """
    shape = torch.full((2,), float(alpha) + 1, dtype=torch.float64, device=device)
    boosted = torch._standard_gamma(shape, generator=generator)  # (2,) Gamma(α + 1)
    uniform = 1 - torch.rand(2, dtype=torch.float64, device=device, generator=generator)  # (0, 1]
    log_gamma = boosted.log() + uniform.log() / alpha  # (2,) log Gamma(α)
    return torch.sigmoid(log_gamma[0] - log_gamma[1]).float()


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | torch.Tensor]:
    """mixup of a batch ``x`` (B, ...) with labels ``y`` (B,): ``(x_mixed, y_a, y_b, lam)``.

    Item i is mixed with item perm[i] of a random permutation: x_mixed[i] = lam * x[i] +
    (1 - lam) * x[perm[i]], y_a = y, y_b = y[perm]. One lam per batch (as in Zhang et al.'s
    reference code), a () float32 tensor on the device, rounded to ``x``'s precision so that
    the loss weighs the labels exactly as the inputs were mixed. ``alpha == 0`` is off: the
    inputs come back as they are, with ``y_b is y_a`` and lam the float 1.0.
    """
    if alpha == 0:
        return x, y, y, 1.0
    lam = beta_sample(alpha, x.device, generator).to(x.dtype)  # ()
    perm = torch.randperm(len(y), device=x.device, generator=generator)  # (B,)
    # one fused pass: x[perm] + lam * (x - x[perm]) = lam * x + (1 - lam) * x[perm]
    mixed = torch.lerp(x.index_select(0, perm), x, lam)  # (B, ...), x's dtype
    return mixed, y, y.index_select(0, perm), lam.float()


def mixup_loss(
    logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float | torch.Tensor
) -> torch.Tensor:
    """lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b), mean over the batch.

    When ``y_b is y_a`` (mixup off) this is exactly ``F.cross_entropy(logits, y_a)``, computed
    once."""
    if y_b is y_a:
        return F.cross_entropy(logits, y_a)
    return lam * F.cross_entropy(logits, y_a) + (1 - lam) * F.cross_entropy(logits, y_b)


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    config: AugmentConfig,
    fill: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    training: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | torch.Tensor]:
    """One training batch's augmentation, called once per step: SpecAugment masks on each
    item (filled with ``fill``, see :func:`spec_augment`), then mixup of the masked batch.

    Returns ``(x, y_a, y_b, lam)`` for :func:`mixup_loss`. With ``training=False`` or a
    config that changes nothing, returns ``(x, y, y, 1.0)`` with the very same ``x``.
    """
    if not training or not config.enabled:
        return x, y, y, 1.0
    x = spec_augment(
        x,
        config.freq_masks,
        config.freq_width,
        config.time_masks,
        config.time_width,
        fill=fill,
        generator=generator,
    )
    return mixup(x, y, config.mixup_alpha, generator)


class Augmenter:
    """:func:`augment_batch` bound to one run's settings, fill value and generator, for the
    training step: ``x, y_a, y_b, lam = augmenter(x, y)`` once per batch, then
    :func:`mixup_loss`. ``config`` is an :class:`AugmentConfig` or anything carrying its fields
    (a ``TrainConfig``); ``fill`` is the training set's mean in dB (``ModelConfig.input_mean``).
    Without a ``generator`` the device's global generator draws, so the run's seed decides."""

    def __init__(
        self,
        config: object,
        fill: float | None,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        self.config = config if isinstance(config, AugmentConfig) else AugmentConfig.of(config)
        self.fill, self.device, self.generator = fill, torch.device(device), generator

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | torch.Tensor]:
        return augment_batch(x, y, self.config, self.fill, self.generator, training=True)
