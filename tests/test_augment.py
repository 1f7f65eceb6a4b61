"""Training-time augmentation: SpecAugment masks (bounds, widths, counts, fill, dtypes), mixup
(convex combinations, λ ~ Beta(α, α), the loss) and the per-batch entry point."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raysearch.training.augment import (
    AugmentConfig,
    Augmenter,
    augment_batch,
    band_mask,
    beta_sample,
    mask_bands,
    mixup,
    mixup_loss,
    spec_augment,
)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("size", "max_width"), [(129, 27), (40, 40), (8, 20), (513, 1)])
def test_bands_stay_inside_the_axis_and_within_the_width(size, max_width):
    starts, widths = mask_bands(4096, size, 3, max_width, generator=seeded())
    assert starts.shape == widths.shape == (4096, 3)
    assert int(starts.min()) >= 0 and int((starts + widths).max()) <= size
    assert int(widths.min()) == 0 and int(widths.max()) == min(max_width, size)  # both ends drawn


def test_band_starts_cover_the_axis_for_narrow_bands():
    starts, widths = mask_bands(20_000, 10, 1, 2, generator=seeded())
    assert set(starts[widths == 2].tolist()) == set(range(9))  # 0 .. size - width


def test_band_mask_marks_exactly_the_bands():
    starts, widths = torch.tensor([[1, 6], [0, 0]]), torch.tensor([[2, 0], [3, 1]])
    expected = torch.tensor([[0, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(band_mask(starts, widths, 8), expected)


def masked_rows_and_columns(out: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    hit = out == fill  # (B, F, T)
    return hit.all(dim=2).sum(dim=1), hit.all(dim=1).sum(dim=1)  # (B,), (B,)


def test_frequency_masks_cover_whole_rows_and_at_most_masks_times_width():
    x = torch.ones(256, 64, 40)
    out = spec_augment(x, 2, 7, 0, 0, fill=0.0, generator=seeded())
    rows, _ = masked_rows_and_columns(out, 0.0)
    assert torch.equal((out == 0).sum(dim=(1, 2)), rows * 40)  # only whole rows are masked
    assert int(rows.max()) <= 2 * 7 and int(rows.max()) > 0
    assert len(set(map(tuple, (out == 0).any(dim=2).tolist()))) > 100  # each item its own masks


def test_time_masks_cover_whole_columns_and_at_most_masks_times_width():
    x = torch.ones(256, 64, 40)
    out = spec_augment(x, 0, 0, 3, 5, fill=0.0, generator=seeded())
    _, columns = masked_rows_and_columns(out, 0.0)
    assert torch.equal((out == 0).sum(dim=(1, 2)), columns * 64)
    assert int(columns.max()) <= 3 * 5 and int(columns.max()) > 0


def test_both_axes_together_stay_within_their_limits():
    x = torch.ones(128, 33, 17)
    out = spec_augment(x, 2, 40, 2, 40, fill=0.0, generator=seeded())  # widths beyond the axes
    rows, columns = masked_rows_and_columns(out, 0.0)
    assert int(rows.max()) <= 33 and int(columns.max()) <= 17
    assert out.shape == x.shape


@pytest.mark.parametrize(
    "settings", [(0, 0, 0, 0), (3, 0, 0, 0), (0, 5, 0, 5), (0, 0, 2, 0), (0, 9, 0, 0)]
)
def test_no_band_to_mask_returns_the_input_itself(settings):
    x = torch.randn(4, 16, 12)
    assert spec_augment(x, *settings, generator=seeded()) is x


def test_masks_fill_with_the_batch_mean_by_default_and_never_write_into_the_input():
    x = torch.randn(16, 32, 24) * 10 - 40
    before = x.clone()
    out = spec_augment(x, 1, 8, 1, 8, generator=seeded())
    assert torch.equal(x, before)
    changed = out != x
    assert changed.any()
    assert torch.equal(out[changed], torch.full_like(out[changed], float(x.mean())))
    assert torch.equal(out[~changed], x[~changed])


def test_a_given_fill_value_is_used():
    out = spec_augment(torch.zeros(8, 16, 16), 2, 4, 2, 4, fill=-45.5, generator=seeded())
    assert set(out.unique().tolist()) == {-45.5, 0.0}


def test_float16_input_keeps_its_dtype_and_values():
    x = (torch.randn(8, 64, 32) * 10 - 40).half()
    out = spec_augment(x, 2, 10, 2, 6, fill=-40.0, generator=seeded())
    assert out.dtype == torch.float16
    kept = out != -40.0
    assert torch.equal(out[kept], x[kept]) and (~kept).any()
    default_fill = spec_augment(x, 2, 10, 2, 6, generator=seeded())
    assert default_fill.dtype == torch.float16


def test_channel_axis_input_is_masked_like_the_flat_one():
    x = torch.randn(6, 20, 30)
    flat = spec_augment(x, 2, 5, 2, 5, fill=0.0, generator=seeded(3))
    with_channel = spec_augment(x[:, None], 2, 5, 2, 5, fill=0.0, generator=seeded(3))
    assert with_channel.shape == (6, 1, 20, 30)
    assert torch.equal(with_channel[:, 0], flat)


def test_same_generator_seed_same_masks():
    x = torch.randn(4, 20, 30)
    a = spec_augment(x, 2, 5, 2, 5, generator=seeded(7))
    b = spec_augment(x, 2, 5, 2, 5, generator=seeded(7))
    assert torch.equal(a, b)


def test_mixup_off_returns_the_inputs_and_the_plain_loss():
    x, y = torch.randn(8, 4, 4), torch.randint(0, 10, (8,))
    mixed, y_a, y_b, lam = mixup(x, y, 0.0)
    assert mixed is x and y_a is y and y_b is y and lam == 1.0
    logits = torch.randn(8, 10)
    assert torch.equal(mixup_loss(logits, y_a, y_b, lam), F.cross_entropy(logits, y))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_rows_are_convex_combinations_of_two_original_rows(alpha):
    x, y = torch.randn(32, 5, 7), torch.arange(32)  # label i names row i
    mixed, y_a, y_b, lam = mixup(x, y, alpha, generator=seeded(1))
    assert lam.shape == () and 0.0 <= float(lam) <= 1.0
    assert torch.equal(y_a, y) and sorted(y_b.tolist()) == list(range(32))  # a permutation
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[y_b])


def test_mixup_of_float16_keeps_the_dtype():
    x = torch.randn(8, 16, 16).half()
    mixed, _, y_b, lam = mixup(x, torch.arange(8), 0.4, generator=seeded())
    assert mixed.dtype == torch.float16
    expected = (lam * x.float() + (1 - lam) * x[y_b].float()).half()
    torch.testing.assert_close(mixed, expected, rtol=2e-3, atol=2e-3)


def test_mixup_loss_is_the_weighted_sum_of_the_two_losses():
    logits, y_a, y_b = torch.randn(6, 10), torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,))
    lam = torch.tensor(0.3)
    expected = 0.3 * F.cross_entropy(logits, y_a) + 0.7 * F.cross_entropy(logits, y_b)
    torch.testing.assert_close(mixup_loss(logits, y_a, y_b, lam), expected)


@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    generator = seeded(5)
    draws = torch.stack([beta_sample(alpha, generator=generator) for _ in range(4000)])
    assert draws.dtype == torch.float32 and 0 <= float(draws.min()) and float(draws.max()) <= 1
    variance = 1 / (4 * (2 * alpha + 1))  # of Beta(α, α), whose mean is 1/2
    assert abs(float(draws.mean()) - 0.5) < 0.03
    assert abs(float(draws.var()) - variance) < 0.15 * variance


def test_tiny_alpha_gives_lambda_near_zero_or_one_and_never_nan():
    generator = seeded(2)
    draws = torch.stack([beta_sample(1e-3, generator=generator) for _ in range(200)])
    assert not draws.isnan().any()
    assert float(((draws < 0.01) | (draws > 0.99)).float().mean()) > 0.95


def test_augment_batch_is_never_applied_outside_training():
    config = AugmentConfig(freq_masks=2, freq_width=10, time_masks=2, time_width=10, mixup_alpha=1)
    x, y = torch.randn(4, 32, 32), torch.arange(4)
    out, y_a, y_b, lam = augment_batch(x, y, config, fill=0.0, training=False)
    assert out is x and y_a is y and y_b is y and lam == 1.0


def test_augment_batch_with_nothing_enabled_returns_the_batch():
    x, y = torch.randn(4, 32, 32), torch.arange(4)
    out, y_a, y_b, lam = augment_batch(x, y, AugmentConfig(), fill=0.0)
    assert out is x and y_a is y and y_b is y and lam == 1.0


def test_augment_batch_masks_then_mixes():
    config = AugmentConfig(freq_masks=1, freq_width=8, time_masks=1, time_width=8, mixup_alpha=0.5)
    x, y = torch.randn(16, 32, 32).half(), torch.arange(16)
    out, y_a, y_b, lam = augment_batch(x, y, config, fill=0.0, generator=seeded(4))
    masked = spec_augment(x, 1, 8, 1, 8, fill=0.0, generator=seeded(4))
    assert out.dtype == torch.float16 and torch.equal(y_a, y)
    expected = (lam * masked.float() + (1 - lam) * masked[y_b].float()).half()
    torch.testing.assert_close(out, expected, rtol=2e-3, atol=2e-3)


def test_augment_batch_masks_only_when_mixup_is_off():
    config = AugmentConfig(time_masks=2, time_width=4)
    x, y = torch.randn(4, 16, 16), torch.arange(4)
    out, y_a, y_b, lam = augment_batch(x, y, config, fill=0.0, generator=seeded())
    assert y_b is y_a and lam == 1.0 and not torch.equal(out, x)


def test_augmenter_reads_the_fields_of_a_training_config_and_calls_augment_batch():
    class Settings:  # stands for TrainConfig: the five fields and others
        freq_masks, freq_width, time_masks, time_width, mixup_alpha = 1, 6, 1, 6, 0.3
        batch_size = 32

    augmenter = Augmenter(Settings(), -40.0, "cpu", generator=seeded(9))
    assert augmenter.enabled and augmenter.config == AugmentConfig(1, 6, 1, 6, 0.3)
    x, y = torch.randn(8, 24, 24), torch.arange(8)
    out, y_a, y_b, lam = augmenter(x, y)
    expected = augment_batch(x, y, augmenter.config, -40.0, seeded(9))
    assert torch.equal(out, expected[0]) and torch.equal(y_b, expected[2])
    assert not Augmenter(AugmentConfig(), None).enabled


def test_enabled_needs_a_count_and_a_width_or_mixup():
    assert not AugmentConfig().enabled
    assert not AugmentConfig(freq_masks=2, time_width=5).enabled
    assert AugmentConfig(freq_masks=2, freq_width=5).enabled
    assert AugmentConfig(time_masks=1, time_width=1).enabled
    assert AugmentConfig(mixup_alpha=0.2).enabled


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"freq_masks": -1}, "freq_masks"),
        ({"freq_width": 2.5}, "freq_width"),
        ({"time_masks": True}, "time_masks"),
        ({"time_width": -3}, "time_width"),
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"mixup_alpha": float("nan")}, "mixup_alpha"),
        ({"mixup_alpha": float("inf")}, "mixup_alpha"),
    ],
)
def test_bad_settings_name_their_field(kwargs, field):
    with pytest.raises(ValueError, match=f"invalid augmentation setting {field}=") as error:
        AugmentConfig(**kwargs)
    assert "\n" not in str(error.value)
