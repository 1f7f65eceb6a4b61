"""Ranking, seed aggregation, the report tables and the best command, from trial records (no
Ray needed)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import pandas as pd
import pytest

from raysearch.results.rank import config_frame, interval, trial_frame
from raysearch.results.records import TrialRecord, status_of
from raysearch.results.write import best_command, write_results
from raysearch.search.space import load_space, parse_space

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def record(trial_id, params, seed, val, test, status="completed", **extra) -> TrialRecord:
    result = {"best_val_acc": val, "epoch": 3, "time_total_s": 10.0, **extra}
    if test is not None:
        result.update(test_acc=test, test_track_acc=test + 0.05, epochs_run=3, n_params=1000)
    config = {**params, "__trial_index__": seed}
    return TrialRecord(trial_id, config, result, status, checkpoint=f"/ckpt/{trial_id}")


def test_status_needs_test_metrics_to_be_completed():
    reported = {"training_iteration": 3}
    assert status_of("TERMINATED", {**reported, "test_acc": 0.5}) == "completed"
    assert status_of("TERMINATED", {**reported, "best_val_acc": 0.5}) == "stopped early"
    assert status_of("TERMINATED", {"trial_id": "a"}) == "no result"  # ended before a report
    assert status_of("ERROR", {}) == "error"


def test_ranking_follows_the_metric_and_its_mode():
    raw = {"metric": "val_loss", "params": {"ratio": {"type": "float", "low": 2, "high": 64}}}
    space = parse_space(raw)
    records = [
        record("a", {"ratio": 4.0}, 0, 0.9, 0.8, val_loss=0.30),
        record("b", {"ratio": 8.0}, 0, 0.5, 0.4, val_loss=0.10),  # lowest loss, worst accuracy
        record("c", {"ratio": 16.0}, 0, 0.7, 0.6, val_loss=0.20),
        record("d", {"ratio": 32.0}, 0, 0.8, None, status="running"),  # no val_loss yet
    ]
    frame = trial_frame(space, records)
    assert space.mode == "min"
    assert list(frame["trial_id"]) == ["b", "c", "a", "d"]
    assert list(frame.columns[:4]) == ["rank", "trial_id", "status", "ratio"]
    assert frame.loc[0, "val_loss"] == 0.10


def test_seeds_aggregate_into_one_row_per_configuration(tmp_path):
    space = load_space(SPACES / "se_blocks.yaml")  # 3 seeds per placement
    records = [
        record("a0", {"se_blocks": "[]"}, 0, 0.50, 0.40),
        record("a1", {"se_blocks": "[]"}, 1, 0.70, 0.60),
        record("a2", {"se_blocks": "[]"}, 2, 0.60, 0.50),
        record("b0", {"se_blocks": "[5]"}, 0, 0.65, 0.70),
        record("b1", {"se_blocks": "[5]"}, 1, 0.66, 0.71),
        record("b2", {"se_blocks": "[5]"}, 2, 0.64, None, status="stopped early"),
    ]
    board = config_frame(space, trial_frame(space, records))
    assert list(board["se_blocks"]) == ["5", "none"]  # 0.655 > 0.600 mean validation
    first = board.iloc[0]
    assert first["n_seeds"] == 2 and first["status"] == "2/3 seeds completed"
    assert first["best_val_acc_mean"] == pytest.approx(0.655)
    assert first["best_seed"] == 1 and first["checkpoint"] == "/ckpt/b1"
    mean, std, half = interval([0.50, 0.70, 0.60])
    assert board.iloc[1]["best_val_acc_ci95"] == pytest.approx(half)
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)
    write_results(space, records, str(tmp_path))
    assert len(pd.read_csv(tmp_path / "leaderboard.csv")) == 2
    assert len(pd.read_csv(tmp_path / "leaderboard_seeds.csv")) == 6


def test_table_shows_intervals_and_seed_noise(tmp_path):
    space = load_space(SPACES / "se_blocks.yaml")
    records = [
        record("a0", {"se_blocks": "[]"}, 0, 0.50, 0.40),
        record("a1", {"se_blocks": "[]"}, 1, 0.70, 0.60),
        record("a2", {"se_blocks": "[]"}, 2, 0.60, 0.50),
        record("c0", {"se_blocks": "[1, 2, 3, 4, 5]"}, 0, 0.90, 0.80),
        record("c1", {"se_blocks": "[1, 2, 3, 4, 5]"}, 1, 0.91, 0.81),
        record("c2", {"se_blocks": "[1, 2, 3, 4, 5]"}, 2, 0.92, 0.83),
        record("d0", {"se_blocks": "[5]"}, 0, 0.89, 0.79),
        record("d1", {"se_blocks": "[5]"}, 1, 0.91, 0.84),
        record("d2", {"se_blocks": "[5]"}, 2, 0.90, 0.80),
    ]
    write_results(space, records, str(tmp_path))
    table = pd.read_csv(tmp_path / "table_5_1_se_blocks.csv").set_index("SE blocks")
    assert list(table.index) == ["none", "5", "1,2,3,4,5"]
    assert table.loc["none", "test segment acc (%)"] == "50.0 ± 24.8"
    assert table.loc["1,2,3,4,5", "within noise of best"] == "best (by val)"
    assert table.loc["5", "within noise of best"].startswith("yes")  # 0.3 points apart
    assert table.loc["none", "within noise of best"].startswith("no")
    assert table.loc["1,2,3,4,5", "report on GTZAN, split unknown (%)"] == 93.6
    assert "Report table 5.1" in (tmp_path / "leaderboard.md").read_text()


def test_ratio_table_shows_the_se_widths_of_equal_networks(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    records = [
        record("a", {"ratio": 31.43}, 0, 0.8, 0.7),
        record("b", {"ratio": 32.0}, 0, 0.8, 0.7),
    ]
    write_results(space, records, str(tmp_path))
    table = pd.read_csv(tmp_path / "table_5_2_ratio.csv")
    assert list(table["SE widths"]) == ["1,2,4,8,4", "1,2,4,8,4"]


def test_ratio_table_and_leaderboard_name_the_same_best_of_tied_twins(tmp_path):
    space = load_space(SPACES / "ratio.yaml")
    records = [  # twins report the same curve: a tie, broken by trial id on the leaderboard
        record("a", {"ratio": 32.0}, 0, 0.8, 0.7),
        record("b", {"ratio": 31.43}, 0, 0.8, 0.7, reused_from="a"),
    ]
    write_results(space, records, str(tmp_path))
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    table = pd.read_csv(tmp_path / "table_5_2_ratio.csv").set_index("ratio r")
    assert board.loc[0, "ratio"] == 32.0
    assert table.loc[32.0, "within noise of best"] == "best (by val)"
    assert table.loc[31.43, "within noise of best"] != "best (by val)"
    summary = (tmp_path / "leaderboard.md").read_text()
    assert "Trial-epochs: 6, of which 3 replayed by 1 twin(s) without training (3 trained)." in (
        summary
    )


@pytest.mark.parametrize("name", ["ratio", "channels", "se_blocks", "joint", "smoke", "augment"])
def test_best_command_round_trips_through_the_train_parser(name):
    """The best command, parsed by raysearch.commands.train's own parser, gives exactly the trial's
    model and training configuration (the network and every training dimension)."""
    from raysearch.commands.train import build_parser, configs_from_args

    space = load_space(SPACES / f"{name}.yaml")
    samples = [dict(p) for p in space.initial_points] or [{}]
    samples.append({p.name: _last(p) for p in space.params})
    for sample in samples:
        sample = {p.name: sample.get(p.name, _last(p)) for p in space.params}
        for repeat in range(space.repeats):
            model, train = space.configs_for(sample, repeat)
            row = pd.Series(
                {**{p.name: _cell(p, sample[p.name]) for p in space.params}, "seed": train.seed}
            )
            command = best_command(space, row, "/data/shards")
            argv = shlex.split(command.replace("\\\n", " "))[3:]  # after python -m raysearch.train
            args = build_parser().parse_args(argv)
            assert args.shards == "/data/shards"
            parsed_model, parsed_train = configs_from_args(args)
            assert parsed_model == model
            runtime = {"workers", "use_gpu", "cpus_per_worker", "torch_threads", "gpus_per_worker",
                       "compile"}  # fmt: skip
            mine = {k: v for k, v in train.to_dict().items() if k not in runtime}
            assert {k: v for k, v in parsed_train.to_dict().items() if k not in runtime} == mine


def test_the_best_command_of_a_cpu_trial_keeps_its_thread_count(tmp_path):
    from raysearch.commands.train import build_parser

    space = load_space(SPACES / "ratio.yaml")  # resources.cpu 1: one torch thread a trial
    records = [
        record("a", {"ratio": 16.0}, 0, 0.8, 0.7, device="cpu"),
        record("b", {"ratio": 8.0}, 0, 0.7, 0.6, device="cuda (NVIDIA H100 80GB HBM3)"),
    ]
    write_results(space, records, str(tmp_path), plots=False)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(board["device"]) == ["cpu", "cuda (NVIDIA H100 80GB HBM3)"]
    text = (tmp_path / "leaderboard.md").read_text()
    command = text.split("```bash\n")[1].split("\n```")[0]
    args = build_parser().parse_args(shlex.split(command.replace("\\\n", " "))[3:])
    assert args.threads == 1 and args.ratio == 16.0
    assert args.compile == "auto"  # ratio.yaml's train.compile: the trial's own setting
    on_gpu = best_command(space, board.iloc[1], None)
    assert "--threads" not in on_gpu  # a GPU's numbers do not depend on it
    eager = parse_space({**space.raw, "train": {**space.raw["train"], "compile": "off"}}, "x")
    assert "--compile" not in best_command(eager, board.iloc[1], None)


def _last(param):
    if param.type == "categorical":
        return param.encode(param.choices[-1])
    return param.high


def _cell(param, value):
    from raysearch.results.rank import cell

    return cell(param.decode(value))


def test_a_saved_experiment_keeps_the_name_of_its_space_file(tmp_path):
    from raysearch.results.records import load_experiment, save_experiment

    space = load_space(SPACES / "ratio.yaml")
    save_experiment(str(tmp_path), space, {"shards": "/data/shards"})
    loaded, meta = load_experiment(str(tmp_path))
    assert loaded.raw == space.raw and loaded.source == space.source
    assert meta == {"shards": "/data/shards"}
    write_results(loaded, [record("a", {"ratio": 16.0}, 0, 0.8, 0.7)], str(tmp_path / "r"))
    assert "Search space `ratio.yaml`" in (tmp_path / "r" / "leaderboard.md").read_text()


def test_a_new_search_replaces_what_another_left_and_keeps_what_is_not_its(tmp_path):
    from raysearch.results.write import RECORD, ResultsFolderError, claim_results_dir

    results = tmp_path / "results"
    seeds = load_space(SPACES / "se_blocks.yaml")  # repeats: it writes leaderboard_seeds.csv
    records = [record("a0", {"se_blocks": "[]"}, 0, 0.5, 0.4)]
    write_results(seeds, records, str(results), "/storage/se_blocks")
    (results / "README.md").write_text("the user's own notes")
    assert (results / "leaderboard_seeds.csv").exists()
    claim_results_dir(str(results), "/storage/se_blocks")  # the same experiment: kept
    assert (results / "leaderboard_seeds.csv").exists()
    claim_results_dir(str(results), "/storage/ratio")  # another: its files go, nothing else
    assert sorted(p.name for p in results.iterdir()) == ["README.md"]
    ratio = load_space(SPACES / "ratio.yaml")
    write_results(
        ratio, [record("b", {"ratio": 16.0}, 0, 0.7, 0.6)], str(results), "/storage/ratio"
    )
    assert not (results / "leaderboard_seeds.csv").exists()
    assert '"/storage/ratio"' in (results / RECORD).read_text()
    (results / RECORD).unlink()  # a leaderboard nobody accounts for: refused, nothing removed
    with pytest.raises(ResultsFolderError, match="holds leaderboard.csv, leaderboard.md"):
        claim_results_dir(str(results), "/storage/joint")
    assert (results / "leaderboard.csv").exists()
