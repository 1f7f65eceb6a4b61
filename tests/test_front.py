"""The accuracy-size front and what a network costs: the front's points, multiply-adds against
torch's own count, CPU times measured once per network shape and kept (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from raysearch.model import SECNN, ModelConfig, count_macs
from raysearch.results import cost
from raysearch.results.front import front_line, pareto_front
from raysearch.results.rank import trial_frame
from raysearch.search.space import load_space
from tests.test_leaderboard import SPACES, record


def test_the_front_keeps_what_no_other_network_beats_on_both():
    accuracy = [0.70, 0.75, 0.72, 0.75, 0.60, np.nan]
    parameters = [100, 400, 500, 400, 50, 10]
    # 0.72 at 500 loses to 0.75 at 400; the twins (0.75, 400) share their point: both on it
    assert pareto_front(accuracy, parameters).tolist() == [True, True, False, True, True, False]
    x, y = front_line(accuracy, parameters)
    assert x.tolist() == [50, 100, 400, 400] and y.tolist() == [0.60, 0.70, 0.75, 0.75]


def test_equal_accuracy_with_more_parameters_is_off_the_front():
    assert pareto_front([0.7, 0.7], [100, 200]).tolist() == [True, False]


@pytest.mark.parametrize(
    "model",
    [
        ModelConfig(channels=(4, 8, 8), se_blocks=(1, 2, 3), input_shape=(32, 40), ratio=2.0),
        ModelConfig(
            channels=(16, 32, 64, 128, 64), input_shape=(32, 129), se_blocks=(4, 5), head="gap"
        ),
        ModelConfig(channels=(8, 8), se_blocks=(), input_shape=(17, 9), n_classes=3),
    ],
)
def test_multiply_adds_are_torch_flop_counters_over_two(model):
    from torch.utils.flop_counter import FlopCounterMode

    network = SECNN(model).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.zeros(1, 1, *model.input_shape))
    assert count_macs(model) == counter.get_total_flops() // 2


def test_ratios_that_build_the_same_network_share_a_shape_and_others_do_not():
    report = (32, 64, 128, 256, 128)
    same = [ModelConfig(channels=report, ratio=r) for r in (31.43, 32.0)]
    assert cost.shape_key(same[0]) == cost.shape_key(same[1])
    assert cost.shape_key(ModelConfig(channels=report, ratio=16.0)) != cost.shape_key(same[0])


def test_cpu_times_are_measured_once_per_shape_and_kept_beside_the_experiment(
    tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(cost, "time_forward", lambda model, batch: calls.append(batch) or 1.5)
    experiment = tmp_path / "experiment"
    model = ModelConfig(channels=(4, 8), se_blocks=(1, 2), input_shape=(16, 16))
    costs = cost.NetworkCosts(str(experiment), measure=True)
    times = costs.times(model)
    assert times == {"cpu_ms_per_segment_b1": 1.5, "cpu_ms_per_segment_b64": 1.5}
    same = ModelConfig(channels=(4, 8), se_blocks=(1, 2), input_shape=(16, 16), ratio=15.9)
    costs.times(same)  # the same SE widths: the same network
    assert calls == [1, 64]
    costs.save()
    kept = json.loads((experiment / cost.COST_FILE).read_text())
    (entry,) = kept["machines"].values()
    assert entry["cpu"] == cost.cpu_name() and entry["threads"] == 1
    monkeypatch.setattr(cost, "time_forward", lambda *_: pytest.fail("timed again"))
    assert cost.NetworkCosts(str(experiment), measure=True).times(model) == times
    other = ModelConfig(channels=(4, 16), se_blocks=(1, 2), input_shape=(16, 16))
    assert cost.NetworkCosts(str(experiment)).times(other)["cpu_ms_per_segment_b1"] is None


def test_a_real_timing_is_milliseconds_per_segment_on_one_thread():
    model = ModelConfig(channels=(4, 8), se_blocks=(1, 2), input_shape=(16, 16))
    threads = torch.get_num_threads()
    one, batch = cost.time_forward(model, 1), cost.time_forward(model, 64)
    assert 0 < batch < one < 1000
    assert torch.get_num_threads() == threads  # set to one for the timing only


def test_the_leaderboard_marks_the_front_among_completed_trials():
    space = load_space(SPACES / "ratio.yaml")
    records = [
        record("a", {"ratio": 8.0}, 0, 0.8, 0.7),
        record("b", {"ratio": 16.0}, 0, 0.75, 0.6),
        record("c", {"ratio": 32.0}, 0, 0.7, 0.6),  # beaten by b: less accurate, larger
        record("d", {"ratio": 64.0}, 0, 0.9, None, status="stopped early"),  # not complete
    ]
    for r, params in zip(records, (3000, 2000, 2500, 100), strict=True):
        r.last_result["n_params"] = params
    frame = trial_frame(space, records).set_index("trial_id")
    assert frame["on_front"].to_dict() == {"d": False, "a": True, "b": True, "c": False}
    assert pd.isna(frame.loc["a", "cpu_ms_per_segment_b1"])  # no timing asked for


def test_only_completed_networks_are_timed_and_a_stopped_twin_shows_their_time(
    tmp_path, monkeypatch
):
    timed = []
    monkeypatch.setattr(cost, "time_forward", lambda model, b: timed.append(model.ratio) or 2.0)
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(
        json.dumps({"shape": [32, 40], "labels": list("abcdefghij"), "train_stats": {}})
    )
    space = load_space(SPACES / "ratio.yaml")
    records = [
        record("a", {"ratio": 8.0}, 0, 0.8, 0.7),
        record("b", {"ratio": 8.1}, 0, 0.5, None, status="stopped early"),  # a's network
        record("c", {"ratio": 64.0}, 0, 0.4, None, status="stopped early"),  # its own
    ]
    costs = cost.NetworkCosts(str(tmp_path / "experiment"), measure=True)
    frame = trial_frame(space, records, {"shards": str(shards)}, costs).set_index("trial_id")
    assert timed == [8.0, 8.0]  # batch 1 and 64 of a's network, nothing else
    assert frame.loc["b", "cpu_ms_per_segment_b64"] == frame.loc["a", "cpu_ms_per_segment_b64"]
    assert pd.isna(frame.loc["c", "cpu_ms_per_segment_b1"]) and frame.loc["c", "macs"] > 0
