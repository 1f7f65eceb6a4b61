"""What makes two trials the same network (raysearch.search.finished_networks), without Ray."""

from __future__ import annotations

from raysearch.model import ModelConfig
from raysearch.search.finished_networks import lookup, network_key, record
from raysearch.training.config import TrainConfig

MODEL = ModelConfig(channels=(32, 64, 128, 256, 128))


def key(model=MODEL, **train) -> str:
    return network_key(model, TrainConfig(**train), "/shards")


def test_ratios_that_round_to_the_same_widths_are_one_network():
    r31 = ModelConfig(channels=MODEL.channels, ratio=31.43)
    r32 = ModelConfig(channels=MODEL.channels, ratio=32.0)
    assert key(r31) == key(r32)
    assert key(r31) != key(ModelConfig(channels=MODEL.channels, ratio=16.0))


def test_seed_and_training_settings_count_placement_does_not():
    assert key(seed=1) != key(seed=0)
    assert key(lr=0.003) != key()
    assert key(freq_masks=2) != key()
    assert key(workers=2, use_gpu=True, torch_threads=4, compile="default") == key()
    # how the blocks run (raysearch.ops) and a compiled run's padded SE blocks (not a setting:
    # SECNN(pad_se=True)) compute the same network
    assert key(kernels="select-conv1", compile="default") == key()


def test_a_recorded_network_is_found_again(tmp_path):
    assert lookup(str(tmp_path), key()) is None
    record(str(tmp_path), key(), "abc", [{"epoch": 1, "val_acc": 0.5}])
    assert lookup(str(tmp_path), key()) == {
        "trial_id": "abc",
        "reports": [{"epoch": 1, "val_acc": 0.5}],
    }
