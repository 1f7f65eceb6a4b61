"""The compile warm-up: which graphs a search compiles before its first trial, and, in a real
compiled search on CPUs, that its trials then compile nothing themselves."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from raysearch.search.space import parse_space
from raysearch.search.warmup import configurations_to_warm, first_wave, graph_key


def space(params: dict, points=(), **extra):
    return parse_space(
        {
            "name": "w",
            "trials": 4,
            "train": {"epochs": 1, "batch_size": 8, "compile": "default", **extra},
            "model": {} if "channels" in params else {"channels": [4, 4, 4, 4, 4]},
            "params": params,
            "initial_points": list(points),
        }
    )


def pairs_of(searched):
    return configurations_to_warm(searched.configs_for, first_wave(searched, concurrency=4))


def test_every_ratio_of_one_channel_configuration_is_one_graph():
    ratios = space(
        {"ratio": {"type": "float", "low": 2, "high": 64}}, [{"ratio": r} for r in (8, 16, 32)]
    )
    pairs = pairs_of(ratios)
    assert len(pairs) == 1 and pairs[0][0].ratio == 8  # the first point stands for the rest
    # without initial points, any configuration has the one graph
    assert len(pairs_of(space({"ratio": {"type": "float", "low": 2, "high": 64}}))) == 1


def test_each_channel_configuration_of_the_first_wave_is_warmed_once():
    channels = {"type": "categorical", "choices": [[4, 4, 4, 4, 4], [8, 8, 8, 8, 8]]}
    points = [
        {"channels": [4, 4, 4, 4, 4]},
        {"channels": [8, 8, 8, 8, 8]},
        {"channels": [4, 4, 4, 4, 4]},
    ]
    pairs = pairs_of(space({"channels": channels}, points))
    assert [m.channels for m, _ in pairs] == [(4, 4, 4, 4, 4), (8, 8, 8, 8, 8)]
    # a searched graph dimension and no initial points: Optuna's first samples are unknown
    assert pairs_of(space({"channels": channels})) == []


def test_what_changes_the_graph_is_in_the_key_and_what_does_not_is_not():
    searched = space({"ratio": {"type": "float", "low": 2, "high": 64}})
    model, train = searched.configs_for({"ratio": 4.0})
    other_ratio, _ = searched.configs_for({"ratio": 50.0})
    assert graph_key(model, train) == graph_key(other_ratio, train)
    wider = space({"ratio": {"type": "float", "low": 2, "high": 64}}, batch_size=16)
    assert graph_key(model, train) != graph_key(*wider.configs_for({"ratio": 4.0}))


@pytest.fixture(scope="module")
def empty_cache_ray(tiny_shards, tmp_path_factory):
    """A local Ray instance whose processes share one empty Inductor cache."""
    import ray

    ray.shutdown()
    cache = str(tmp_path_factory.mktemp("inductor"))
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    ray.init(num_cpus=2, log_to_driver=False)
    yield tiny_shards
    ray.shutdown()
    if before is None:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


@pytest.mark.slow
def test_a_compiled_search_compiles_once_before_its_trials(empty_cache_ray, tmp_path, capsys):
    """4 compiled trials of one channel configuration, 2 at a time, an empty cache: the
    warm-up compiles the forward and backward graphs once, and every trial loads them (its
    start-up is the cached one) instead of the first wave compiling them side by side."""
    from raysearch.search.run import run_search

    searched = parse_space(
        {
            "name": "warm",
            "trials": 4,
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "patience": 0,
                "max_train_segments": 16,
                "compile": "default",
            },  # fmt: skip
            "model": {"channels": [4, 4, 4, 4, 4]},
            "resources": {"cpu": 1, "gpu": 0},
            "initial_points": [{"ratio": 2}, {"ratio": 4}],
            "params": {"ratio": {"type": "float", "low": 2, "high": 4}},
        }
    )
    storage, results = tmp_path / "storage", tmp_path / "results"
    summary = run_search(
        searched, empty_cache_ray, str(storage), str(results), verbose=0, baseline=False
    )
    said = capsys.readouterr().out
    assert "compile warm-up: 1 channel configuration(s) (4,4,4,4,4)" in said
    warmup = summary["compile"]["warmup"]
    assert warmup["graphs_compiled"] >= 2 and warmup["graphs_cached"] == 0  # forward, backward
    board = pd.read_csv(results / "leaderboard.csv")
    trained = board[board["reused_from"].isna()]
    assert len(trained) >= 2
    assert (trained["graphs_compiled"] == 0).all()  # every trial loaded the warm-up's graphs
    assert summary["compile"]["trials_from_cache"] == len(trained)
    # the warm-up is in the driver's run, so in the search's wall time
    runs = json.loads((storage / "warm" / "_raysearch" / "runs.json").read_text())
    assert len(runs) == 1 and runs[0]["warmup"]["seconds"] > 0
    assert "before_tune" not in runs[0]
    assert summary["wall_s"] >= warmup["seconds"]
    # key by key: what the trials looked up is what the warm-up wrote
    written = {key.split(":")[1] for key in runs[0]["warmup"]["keys"]}
    assert len(written) >= 2 and all(k.startswith("miss:") for k in runs[0]["warmup"]["keys"])
    for result in (storage / "warm").glob("*/result.json"):
        first = json.loads(result.read_text().splitlines()[0])
        if first.get("graph_keys") and not first.get("reused_from"):
            assert {key.split(":")[1] for key in first["graph_keys"].split()} == written
            assert all(key.startswith("hit:") for key in first["graph_keys"].split())
