"""The SE-CNN: shapes, parameter counts, the SE gate, SE placement, odd ratios, the heads."""

from __future__ import annotations

import pytest
import torch

from raysearch.model import (
    DEFAULT_CHANNELS,
    SECNN,
    ModelConfig,
    ModelConfigError,
    SEBlock,
    count_parameters,
)

# conv weights+biases 682,880 + dense 128*16*4*10+10 = 81,930 + SE blocks 13,574
DEFAULT_PARAMETERS = 778_384


def se_parameters(channels: int, ratio: float = 16) -> int:
    hidden = max(1, round(channels / ratio))
    return channels * hidden + hidden + hidden * channels + channels


def test_default_output_shape():
    model = SECNN(ModelConfig()).eval()
    assert model(torch.zeros(3, 1, 513, 129)).shape == (3, 10)
    assert model(torch.zeros(2, 513, 129, dtype=torch.float16)).shape == (2, 10)


def test_default_parameter_count():
    assert count_parameters(SECNN(ModelConfig())) == DEFAULT_PARAMETERS


def test_se_block_output_is_input_times_gate_by_hand():
    block = SEBlock(channels=2, ratio=2)  # hidden width 1
    with torch.no_grad():
        block.reduce.weight.copy_(torch.tensor([[1.0, -1.0]]))
        block.reduce.bias.fill_(0.5)
        block.expand.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        block.expand.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2): channel means 2 and 1
    hidden = max(0.0, 1.0 * 2 - 1.0 * 1 + 0.5)  # relu(1.5) = 1.5
    gate = torch.sigmoid(torch.tensor([2.0 * hidden + 0.0, -1.0 * hidden + 1.0]))
    expected = x * gate[None, :, None, None]
    torch.testing.assert_close(block(x), expected)
    assert not torch.allclose(block(x), x)


@pytest.mark.parametrize("placement", [(), (5,), (4, 5), (3, 4, 5), (2, 3, 4, 5)])
def test_removing_se_blocks_removes_their_parameters(placement):
    channels = ModelConfig().channels
    missing = [b for b in range(1, 6) if b not in placement]
    expected = DEFAULT_PARAMETERS - sum(se_parameters(channels[b - 1]) for b in missing)
    model = SECNN(ModelConfig(se_blocks=placement))
    assert count_parameters(model) == expected
    assert sum(isinstance(m, SEBlock) for m in model.modules()) == len(placement)


def test_fractional_ratio_builds_and_rounds():
    model = SECNN(ModelConfig(ratio=31.43)).eval()
    widths = [m.reduce.out_features for m in model.modules() if isinstance(m, SEBlock)]
    assert widths == [1, 2, 4, 8, 4]  # round(C / 31.43) for C = 32, 64, 128, 256, 128
    assert model(torch.zeros(1, 1, 513, 129)).shape == (1, 10)


def test_large_ratio_keeps_at_least_one_unit():
    assert SEBlock(32, 64.0).reduce.out_features == 1
    assert SEBlock(8, 1000.0).reduce.out_features == 1


def test_other_channels_and_input_shapes():
    model = SECNN(ModelConfig(channels=(8, 16, 32, 64, 32), input_shape=(64, 40)))
    assert model(torch.zeros(2, 1, 64, 40)).shape == (2, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 0}, "ratio"),
        ({"se_blocks": (6,)}, "se_blocks"),
        ({"channels": (0, 4)}, "channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_shape": (16, 16)}, "too small"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ModelConfigError, match=message):
        ModelConfig(**kwargs)


def test_input_is_standardised_with_the_stored_statistics():
    config = ModelConfig(
        channels=(4, 4, 4, 4, 4),
        input_shape=(32, 32),
        dropout=0.0,
        input_mean=-40.0,
        input_std=20.0,
    )
    model = SECNN(config).eval()
    x = torch.randn(2, 1, 32, 32)
    shifted = SECNN(ModelConfig(channels=(4, 4, 4, 4, 4), input_shape=(32, 32), dropout=0.0))
    shifted.load_state_dict(
        {**model.state_dict(), "input_mean": torch.tensor(0.0), "input_std": torch.tensor(1.0)}
    )
    torch.testing.assert_close(model(x * 20.0 - 40.0), shifted.eval()(x), rtol=1e-4, atol=1e-4)


def test_head_defaults_to_dense_and_keeps_the_state_dict_keys():
    model = SECNN(ModelConfig())
    assert ModelConfig().head == "dense"
    assert model.head.in_features == 128 * 16 * 4
    keys = {k for k in model.state_dict() if not k.startswith("blocks.")}
    assert keys == {"head.weight", "head.bias", "input_mean", "input_std"}


def test_old_config_dicts_without_head_load_as_dense():
    old = ModelConfig().to_dict()
    del old["head"]
    assert ModelConfig.from_dict(old) == ModelConfig()
    assert ModelConfig.from_dict({**old, "head": "gap"}).head == "gap"


def test_gap_parameter_count_by_hand():
    convs = (
        (1 * 9 * 32 + 32)  # block 1: 3x3 kernels from 1 channel, plus biases
        + (32 * 9 * 64 + 64)
        + (64 * 9 * 128 + 128)
        + (128 * 9 * 256 + 256)
        + (256 * 9 * 128 + 128)
    )  # 682,880
    se = (  # each block: Linear C → w (weights + biases), Linear w → C; w = round(C / 16)
        (32 * 2 + 2 + 2 * 32 + 32)  # w = 2
        + (64 * 4 + 4 + 4 * 64 + 64)  # w = 4
        + (128 * 8 + 8 + 8 * 128 + 128)  # w = 8
        + (256 * 16 + 16 + 16 * 256 + 256)  # w = 16
        + (128 * 8 + 8 + 8 * 128 + 128)  # w = 8
    )  # 13,574
    head = 128 * 10 + 10  # C_last → 10 classes
    assert convs == 682_880 and se == 13_574
    assert count_parameters(SECNN(ModelConfig(head="gap"))) == convs + se + head == 697_744
    assert convs + se + (128 * 16 * 4 * 10 + 10) == DEFAULT_PARAMETERS  # dense, unchanged


def test_gap_parameter_count_with_a_large_ratio_uses_one_unit_se_layers():
    # r = 64: round(C / 64) is 0 for 32 channels (kept at 1), 1, 2, 4, 2 for the rest
    widths = {32: 1, 64: 1, 128: 2, 256: 4}
    se = sum(c * widths[c] + widths[c] + widths[c] * c + c for c in DEFAULT_CHANNELS)
    model = SECNN(ModelConfig(head="gap", ratio=64.0))
    assert count_parameters(model) == 682_880 + se + 128 * 10 + 10  # convs as above


def test_gap_head_accepts_any_input_size_with_the_same_weights():
    model = SECNN(ModelConfig(head="gap")).eval()
    assert model(torch.zeros(2, 1, 128, 129)).shape == (2, 10)
    assert model(torch.zeros(2, 1, 513, 129)).shape == (2, 10)
    assert model(torch.zeros(2, 513, 129, dtype=torch.float16)).shape == (2, 10)
    with pytest.raises(RuntimeError):  # the dense head's weights fix the input size
        SECNN(ModelConfig()).eval()(torch.zeros(2, 1, 128, 129))


def test_gap_head_is_the_mean_of_the_last_block():
    config = ModelConfig(channels=(4, 4, 4, 4, 6), input_shape=(64, 64), dropout=0.0, head="gap")
    model = SECNN(config).eval()
    x = torch.randn(3, 1, 64, 64)
    features = model.blocks(x).mean(dim=(2, 3))  # (3, 6)
    torch.testing.assert_close(model(x), model.head(features))


def test_unknown_head_is_named_with_the_allowed_values():
    with pytest.raises(ModelConfigError, match="head must be one of dense, gap, got 'max'"):
        ModelConfig(head="max")


def train_step_grads(model: SECNN, x: torch.Tensor, seed: int = 0):
    """Logits and every parameter's gradient (by state-dict name) of one training step."""
    model.train()
    torch.manual_seed(seed)  # the same dropout masks
    logits = model(x)
    logits.square().mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return logits.detach(), grads


def test_select_kernels_compute_exactly_what_aten_computes():
    """ReLU → max-pool as one op with a 1-byte window slot: the same network, float for float,
    forward and every gradient (raysearch.ops)."""
    x = torch.randn(2, 1, 513, 129) * 20 - 40
    results = {}
    for kernels in ("aten", "select"):
        torch.manual_seed(0)
        results[kernels] = train_step_grads(SECNN(ModelConfig(), kernels), x)
    assert torch.equal(results["aten"][0], results["select"][0])
    for name, grad in results["aten"][1].items():
        assert torch.equal(grad, results["select"][1][name]), name


def test_select_conv1_computes_what_aten_computes_to_float32_rounding():
    config = ModelConfig(channels=(8, 8, 8, 8, 8), input_shape=(65, 33), dropout=0.0)
    x = torch.randn(3, 1, 65, 33) * 20 - 40
    results = {}
    for kernels in ("aten", "select-conv1"):
        torch.manual_seed(0)
        model = SECNN(config, kernels)
        results[kernels] = train_step_grads(model, x)
        assert list(model.state_dict()) == list(SECNN(config).state_dict())  # checkpoints load
    torch.testing.assert_close(results["aten"][0], results["select-conv1"][0])
    for name, grad in results["aten"][1].items():
        theirs = results["select-conv1"][1][name]
        torch.testing.assert_close(theirs, grad, rtol=1e-4, atol=1e-5 * grad.abs().max())


def test_unknown_kernels_are_named():
    with pytest.raises(ValueError, match="kernels must be one of aten, select, select-conv1"):
        SECNN(ModelConfig(), kernels="triton")


SMALL = ModelConfig(channels=(8, 16, 16, 32, 16), input_shape=(64, 33), ratio=5.3, dropout=0.1)


def test_padded_se_starts_as_the_unpadded_network_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    plain = SECNN(SMALL)
    after_plain = torch.rand(4)
    torch.manual_seed(0)
    padded = SECNN(SMALL, pad_se=True)
    after_padded = torch.rand(4)
    assert torch.equal(after_plain, after_padded)
    widths = [(m.hidden, m.reduce.out_features) for m in padded.modules() if isinstance(m, SEBlock)]
    assert widths == [(2, 8), (3, 16), (3, 16), (6, 32), (3, 16)]  # round(C / 5.3), padded to C
    state, padded_state = plain.state_dict(), padded.state_dict()
    assert list(state) == list(padded_state)
    for name, value in state.items():
        assert torch.equal(value, padded_state[name]), name
    assert count_parameters(padded) == count_parameters(plain)  # the real count
    assert sum(p.numel() for p in padded.parameters()) > count_parameters(plain)


def test_padded_se_trains_as_the_unpadded_network_and_its_padding_stays_zero():
    """Same seed, same batches: the same losses and weights up to the matrix products' float32
    rounding (a product's summation order depends on its width), for several Adam steps with
    weight decay; the padding's gradients are exactly 0 and its weights stay exactly 0."""
    x = torch.randn(4, 1, 64, 33)
    models, optimizers = {}, {}
    for padded in (False, True):
        torch.manual_seed(0)
        models[padded] = SECNN(SMALL, pad_se=padded)
        optimizers[padded] = torch.optim.Adam(
            models[padded].parameters(), lr=0.01, weight_decay=0.1
        )
    for step in range(4):
        losses = {}
        for padded, model in models.items():
            logits, grads = train_step_grads(model, x, seed=step)
            losses[padded] = logits.square().mean()
            optimizers[padded].step()
            optimizers[padded].zero_grad()
        torch.testing.assert_close(losses[True], losses[False], rtol=1e-5, atol=0)
    for block in (m for m in models[True].modules() if isinstance(m, SEBlock)):
        real = block.hidden
        assert (
            block.reduce.weight[real:].abs().sum() == 0
            and block.reduce.bias[real:].abs().sum() == 0
        )
        assert block.expand.weight[:, real:].abs().sum() == 0
    plain, padded = models[False].state_dict(), models[True].state_dict()
    for name, value in plain.items():
        torch.testing.assert_close(padded[name], value, rtol=1e-4, atol=1e-6)


def test_padding_gradients_are_exactly_zero():
    torch.manual_seed(0)
    model = SECNN(SMALL, pad_se=True)
    train_step_grads(model, torch.randn(2, 1, 64, 33))
    real_grads = 0.0
    for block in (m for m in model.modules() if isinstance(m, SEBlock)):
        real = block.hidden
        assert block.reduce.weight.grad[real:].abs().sum() == 0
        assert block.reduce.bias.grad[real:].abs().sum() == 0
        assert block.expand.weight.grad[:, real:].abs().sum() == 0
        real_grads += float(block.expand.weight.grad[:, :real].abs().sum())
    assert real_grads > 0


def test_padded_and_unpadded_networks_load_each_others_checkpoints(tmp_path):
    from raysearch.training.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    padded = SECNN(SMALL, pad_se=True)
    with torch.no_grad():
        for p in padded.parameters():
            p.add_(0.01)  # trained: the padding moved too, the checkpoint must not carry it
    folder = save_checkpoint(padded.state_dict(), SMALL, {}, {}, 1, {}, str(tmp_path))
    loaded, payload = load_checkpoint(folder)  # what raysearch predict does: a plain SECNN
    x = torch.randn(2, 1, 64, 33)
    block = next(m for m in padded.modules() if isinstance(m, SEBlock))
    with torch.no_grad():
        block.reduce.weight[block.hidden :] = 0  # the padding as training keeps it
        block.expand.weight[:, block.hidden :] = 0
        block.reduce.bias[block.hidden :] = 0
    torch.testing.assert_close(loaded(x), padded.eval()(x))
    again = SECNN(SMALL, pad_se=True)
    again.load_state_dict(loaded.state_dict())  # and back: zero-padded
    torch.testing.assert_close(again.eval()(x), loaded(x))
    assert again.blocks[0].se.reduce.weight.shape == (8, 8)


def test_ratios_at_or_below_one_are_not_padded():
    block = SEBlock(8, 0.5, padded=True)  # 16 units: more than C, nothing to pad
    assert block.reduce.out_features == 16 and not block.padded and block.padding == 0


def test_the_padding_is_inert_whatever_it_holds():
    """The mask, not only the zeros the padding starts with, keeps it out of the function."""
    torch.manual_seed(0)
    plain = SECNN(SMALL).eval()
    torch.manual_seed(0)
    padded = SECNN(SMALL, pad_se=True).eval()
    with torch.no_grad():
        for block in (m for m in padded.modules() if isinstance(m, SEBlock)):
            real = block.hidden
            block.reduce.weight[real:] = torch.randn_like(block.reduce.weight[real:])
            block.reduce.bias[real:] = 1.0  # the padded units would fire
            block.expand.weight[:, real:] = torch.randn_like(block.expand.weight[:, real:])
    x = torch.randn(2, 1, 64, 33)
    torch.testing.assert_close(padded(x), plain(x))
