"""What a search says at its end (raysearch.results.summary, raysearch.results.runs), from trial
records and recorded driver runs; no Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysearch.results.rank import trial_frame
from raysearch.results.records import TrialRecord
from raysearch.results.runs import RunLog, read_runs, running_time
from raysearch.results.summary import finished, summarize, summary_lines, trial_number
from raysearch.results.write import write_results
from raysearch.search.gpu_monitor import GpuMonitor
from raysearch.search.space import load_space, parse_space

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
GPU = "cuda (NVIDIA H200)"


def trial(number: int, ratio: float, status: str, startup: float, **result) -> TrialRecord:
    reported = {"best_val_acc": 0.5, "epoch": 5, "epochs_run": 5, "startup_s": startup,
                "gpu_mem_peak_gib": 4.0 + number / 10, "device": GPU, **result}  # fmt: skip
    if status == "completed":
        reported.update(test_acc=0.5, test_track_acc=0.55)
    return TrialRecord(f"abc12_{number:05d}", {"ratio": ratio}, reported, status)


def search(tmp_path: Path):
    space = load_space(SPACES / "ratio.yaml")
    records = [
        trial(0, 8.0, "completed", 40.0),  # the first trial of the channels: pays the compile
        trial(1, 16.0, "stopped early", 4.0),
        trial(2, 32.0, "completed", 6.0),
        trial(3, 31.43, "completed", 40.0, reused_from="abc12_00002"),  # a twin: replays 2
        trial(4, 4.0, "error", 3.0),
    ]
    return space, records


def test_start_up_after_the_first_trial_of_the_channels_leaves_out_the_compile_and_twins(
    tmp_path,
):
    space, records = search(tmp_path)
    summary = summarize(space, trial_frame(space, records), runs=[])
    startup = summary["startup_s"]
    assert startup["trials"] == 4  # the twin's start-up is its original's: left out
    assert startup["median"] == 5.0  # of 40, 4, 6, 3
    assert startup["after_first_of_channels_median"] == 4.0  # of 4, 6, 3 (trial 0 left out)
    trials = {"planned": 50, "total": 5, "completed": 3, "stopped_early": 1, "twins": 1,
              "error": 1, "no_result": 0, "unfinished": 0}  # fmt: skip
    assert summary["trials"] == trials
    assert not finished(summary)  # 5 of ratio.yaml's 50 trials
    assert summary["trial_epochs"] == {"reported": 25, "trained": 20, "replayed": 5}
    assert summary["gpu"]["trial_memory_peak_gib_max"] == pytest.approx(4.4)  # not the twin's
    assert summary["devices"] == [GPU]


def test_the_wall_time_is_the_drivers_own_summed_over_resumes_and_gpu_busy_weighted(tmp_path):
    runs = [
        {"started": 100.0, "last_seen": 400.0, "gpu": {"busy_pct": 90.0, "seconds": 300.0,
         "memory_peak_gib": 40.0, "devices": ["NVIDIA H200"], "samples": 600}},
        {"started": 5000.0, "last_seen": 5100.0, "gpu": {"busy_pct": 50.0, "seconds": 100.0,
         "memory_peak_gib": 45.5, "devices": ["NVIDIA H200"], "samples": 200}},
    ]  # fmt: skip
    assert running_time(runs) == 400.0  # not the 5,000 s between the two runs
    space, records = search(tmp_path)
    summary = summarize(space, trial_frame(space, records), runs)
    assert summary["wall_s"] == 400.0 and summary["runs"] == 2
    assert summary["gpu"]["busy_pct"] == 80.0  # (90 x 300 + 50 x 100) / 400
    assert summary["gpu"]["memory_peak_gib"] == 45.5
    lines = "\n".join(summary_lines(summary, space))
    assert "Wall time: 6 min 40 s, the search's own running time, 2 driver runs" in lines
    assert "1 stopped early by ASHA" in lines and "1 of them replayed as twins" in lines
    assert "NVIDIA H200): 80.0 % busy" in lines
    assert "after the first trial of each channel configuration: 4.0 s (3 trials)" in lines
    assert "**Not finished**: 5 of 50 trials ended; `raysearch tune --resume --name ratio`" in lines


def test_a_run_log_records_each_driver_run_and_its_last_sign_of_work(tmp_path):
    experiment = str(tmp_path / "experiment")
    first = RunLog.begin(experiment)
    first.tick()
    second = RunLog.begin(experiment)  # a --resume
    runs = read_runs(experiment)
    assert [r["resumed"] for r in runs] == [False, True]
    assert second.index == 1 and runs[0]["last_seen"] >= runs[0]["started"]
    assert runs[1]["last_seen"] == runs[1]["started"]  # not ticked yet
    assert read_runs(str(tmp_path / "nothing")) == []


def test_without_a_gpu_the_monitor_records_nothing():
    monitor = GpuMonitor(period_s=0.01).start()
    monitor.stop()
    if monitor.available:
        pytest.skip("this machine has a GPU NVML can see")
    assert monitor.use() is None


def test_results_carry_the_summary_the_best_and_the_baseline(tmp_path):
    from tests.test_results_baseline import baseline

    space, records = search(tmp_path)
    experiment = tmp_path / "experiment"
    RunLog.begin(str(experiment)).tick()
    results = tmp_path / "results"
    write_results(space, records, str(results), str(experiment), {"data": "synthetic x"},
                  baseline=baseline(test_track_acc=0.5))  # fmt: skip
    summary = json.loads((results / "summary.json").read_text())
    assert summary["trials"]["total"] == 5 and summary["wall_s"] is not None
    best = summary["best"]  # ties on best_val_acc: the first completed trial by id
    assert best["trial"] == "abc12_00000" and best["ratio"] == 8.0
    assert best["test_track_acc"] == 0.55
    assert summary["baseline"]["best_minus_baseline_test_track_points"] == 5.0
    assert "One seed per configuration" in summary["seed_noise"]
    line = next(x for x in summary_lines(summary, space) if x.startswith("- Best"))
    assert "ratio=8.0: 0.500, test track accuracy 0.550 (+5.0 points against" in line
    board = (results / "leaderboard.md").read_text()
    assert "## Search summary" in board and "- Start-up (process start" in board
    assert board.count("One seed per configuration") == 1  # in the summary's best line only
    trials = trial_frame(space, records)
    assert trials.set_index("trial_id").loc["abc12_00003", "startup_s"] != 40.0  # blank: twin


def test_trial_numbers_order_trials_as_tune_started_them():
    assert trial_number("3f2a1_00012") == 12
    assert trial_number("no-number") == 0


def test_a_search_is_finished_when_every_planned_trial_ended():
    space = parse_space({"trials": 2, "params": {"ratio": {"type": "float", "low": 2, "high": 4}}})
    ended = [trial(0, 2.0, "completed", 1.0), trial(1, 3.0, "stopped early", 1.0)]
    assert finished(summarize(space, trial_frame(space, ended), []))
    running = [ended[0], trial(1, 3.0, "running", 1.0)]  # Ctrl+C while trial 1 trained
    assert not finished(summarize(space, trial_frame(space, running), []))


def test_a_search_with_no_trial_and_no_run_yet_says_so():
    space = parse_space({"params": {"ratio": {"type": "float", "low": 2, "high": 4}}})
    summary = summarize(space, trial_frame(space, []), [])
    assert summary["wall_s"] is None and summary["trials"]["total"] == 0
    assert summary["startup_s"]["median"] is None
    assert not any(line.startswith("- Wall time") for line in summary_lines(summary, space))
