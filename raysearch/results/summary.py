"""What a search says at its end: how long it ran, what its trials did, what they cost in
start-up and GPU memory, how busy the GPU was, and its best configuration with the seed-noise
caveat, and the ensemble of its networks against the best trial. One dict (``summary.json``),
the same as lines for ``leaderboard.md`` and the terminal.

Start-up is each trained trial's ``startup_s`` (its process's start, or its hand-over to a
reused process, to the end of its first step). A twin replays another trial's reports, so its
start-up and memory are not its own and are left out. "After the first trial of a channel
configuration" leaves out, per channel tuple, the trial with the lowest trial number: the one
that pays the compile the later ones can take from the cache.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from raysearch.baseline.result import BaselineResult
from raysearch.results.baseline import baseline_summary, best_test_track_acc
from raysearch.results.rank import epoch_counts
from raysearch.results.runs import running_time, warmup_totals
from raysearch.results.search_ensemble import EnsembleResult, ensemble_summary, summary_line
from raysearch.search.space import SearchSpace

ENDED = ("completed", "stopped early", "error", "no result")


def summarize(
    space: SearchSpace,
    trials: pd.DataFrame,
    runs: list[dict],
    best: pd.Series | None = None,
    baseline: BaselineResult | None = None,
    ensemble: EnsembleResult | None = None,
) -> dict:
    """The summary of a :func:`~raysearch.results.rank.trial_frame`, the experiment's driver
    runs (:mod:`raysearch.results.runs`), the leaderboard's best row, the classical
    baseline of the same shards and the ensemble of the search's networks."""
    status = trials["status"] if len(trials) else pd.Series(dtype=str)
    twin = _replayed(trials)
    trained = trials[~twin] if len(trials) else trials
    counts = epoch_counts(trials)
    return {
        "search": space.name,
        "wall_s": round(running_time(runs), 1) if runs else None,
        "runs": len(runs),
        "trials": {
            "planned": space.total_runs,
            "total": len(trials),
            "completed": int((status == "completed").sum()),
            "stopped_early": int((status == "stopped early").sum()),
            "twins": int(twin.sum()),
            "error": int((status == "error").sum()),
            "no_result": int((status == "no result").sum()),  # ended before a first report
            "unfinished": int((~status.isin(ENDED)).sum()),  # running or pending when it stopped
        },
        "trial_epochs": {
            "reported": counts.reported,
            "trained": counts.trained,
            "replayed": counts.replayed,
        },
        "startup_s": _startup(trained),
        "compile": _compile(trained, runs),
        "gpu": _gpu(trained, runs),
        "devices": sorted({str(d) for d in trials.get("device", []) if str(d) not in ("", "nan")}),
        "seeds_per_configuration": space.repeats,
        "best": _best(space, best),
        "seed_noise": seed_noise_caveat(space),
        "baseline": (
            baseline_summary(baseline, best_test_track_acc(best) if best is not None else None)
            if baseline is not None
            else None
        ),
        "ensemble": (
            ensemble_summary(ensemble, baseline.test_track_acc if baseline else None)
            if ensemble is not None
            else None
        ),
    }


def _best(space: SearchSpace, best: pd.Series | None) -> dict | None:
    """The best row's parameters and accuracies (means over seeds with repeats)."""
    if best is None:
        return None
    suffix = "_mean" if space.repeats > 1 else ""
    entry = {name: _plain(best.get(name)) for name in space.param_names}
    for column in (space.metric, "test_acc", "test_track_acc"):
        entry[column] = _plain(best.get(f"{column}{suffix}"))
    entry["trial"] = str(best.get("trial_id", best.get("trial_ids", "")))
    return entry


def _plain(value):
    """A JSON-able cell: numbers as floats (None for NaN), anything else as text."""
    if value is None or _nan(value):
        return None
    if isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, str) else str(value)


def _replayed(trials: pd.DataFrame) -> pd.Series:
    if not len(trials):
        return pd.Series(dtype=bool)
    return trials["reused_from"].fillna("").astype(str) != ""


def _median(values) -> float | None:
    values = [float(v) for v in values if v is not None and not _nan(v)]
    return round(statistics.median(values), 1) if values else None


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def trial_number(trial_id: str) -> int:
    """The number Tune gives a trial (``3f2a1_00012`` → 12); trials start in that order."""
    try:
        return int(str(trial_id).rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0


def _startup(trained: pd.DataFrame) -> dict:
    if not len(trained) or "startup_s" not in trained:
        return {"median": None, "after_first_of_channels_median": None, "trials": 0}
    timed = trained[pd.to_numeric(trained["startup_s"], errors="coerce").notna()]
    ordered = timed.assign(number=timed["trial_id"].map(trial_number)).sort_values("number")
    later = ordered[ordered.duplicated("channels_used", keep="first")]
    return {
        "median": _median(timed["startup_s"]),
        "after_first_of_channels_median": _median(later["startup_s"]),
        "trials": len(timed),
        "after_first_of_channels_trials": len(later),
    }


def _compile(trained: pd.DataFrame, runs: list[dict]) -> dict | None:
    """The compile warm-ups (:mod:`raysearch.search.warmup`) and what the compiled trials
    compiled themselves; None when nothing compiled."""
    warmup = warmup_totals(runs)
    column = trained["graphs_compiled"] if "graphs_compiled" in trained else pd.Series([])
    compiled = pd.to_numeric(column, errors="coerce").dropna()
    if warmup is None and compiled.empty:
        return None
    return {
        "warmup": warmup,
        "trials": len(compiled),
        "trials_from_cache": int((compiled == 0).sum()),
        "trial_graphs_compiled": int(compiled.sum()),
    }


def _gpu(trained: pd.DataFrame, runs: list[dict]) -> dict:
    peaks = trained["gpu_mem_peak_gib"] if "gpu_mem_peak_gib" in trained else []
    sampled = [run["gpu"] for run in runs if run.get("gpu")]
    seconds = sum(g["seconds"] for g in sampled)
    busy = (
        sum(g["busy_pct"] * g["seconds"] for g in sampled) / seconds
        if seconds
        else (sampled[0]["busy_pct"] if sampled else None)
    )
    return {
        "trial_memory_peak_gib_median": _median(peaks),
        "trial_memory_peak_gib_max": max(
            (float(p) for p in peaks if not _nan(p) and p is not None), default=None
        ),
        "busy_pct": None if busy is None else round(busy, 1),
        "memory_peak_gib": max((g["memory_peak_gib"] for g in sampled), default=None),
        "devices": sorted({d for g in sampled for d in g.get("devices", [])}),
    }


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def summary_lines(summary: dict, space: SearchSpace) -> list[str]:
    """The summary as Markdown bullet lines (also what ``raysearch tune`` prints at its end)."""
    trials, epochs, startup, gpu = (
        summary["trials"],
        summary["trial_epochs"],
        summary["startup_s"],
        summary["gpu"],
    )
    lines = []
    if summary["wall_s"] is not None:
        runs = summary["runs"]
        resumed = f", {runs} driver runs: started once, resumed {runs - 1}x" if runs > 1 else ""
        lines.append(
            f"- Wall time: {_duration(summary['wall_s'])}, the search's own running time{resumed}."
        )
    stopped = "stopped early" + (" by ASHA" if space.scheduler.type == "asha" else "")
    lines.append(
        f"- Trials: {trials['total']}: {trials['completed']} completed, {trials['stopped_early']} "
        f"{stopped}, {trials['twins']} of them replayed as twins (the network of an earlier "
        f"trial: no training), {trials['error']} failed."
    )
    if not finished(summary):
        lines.append(
            f"- **Not finished**: {trials['total'] - trials['unfinished']} of "
            f"{trials['planned']} trials ended; `raysearch tune --resume --name "
            f"{summary['search']}` (with the same --storage) goes on from where it stopped."
        )
    line = f"- Trial-epochs: {epochs['reported']}"
    if trials["twins"]:
        line += (
            f", of which {epochs['replayed']} replayed by {trials['twins']} twin(s) without "
            f"training ({epochs['trained']} trained)"
        )
    lines.append(line + ".")
    if startup["median"] is not None:
        line = (
            f"- Start-up (process start to the end of the first step), median over "
            f"{startup['trials']} trained trials: {startup['median']} s"
        )
        if startup["after_first_of_channels_median"] is not None:
            line += (
                f"; after the first trial of each channel configuration: "
                f"{startup['after_first_of_channels_median']} s "
                f"({startup['after_first_of_channels_trials']} trials)"
            )
        lines.append(line + ".")
    compiled = summary.get("compile")
    if compiled:
        warmup = compiled["warmup"]
        line = "- Compile: "
        if warmup:
            line += (
                f"warm-up {warmup['seconds']} s before the trials ({warmup['configurations']} "
                f"channel configuration(s), {warmup['graphs_compiled']} graph(s) compiled, "
                f"{warmup['graphs_cached']} found cached; in the wall time); "
            )
        line += (
            f"{compiled['trials_from_cache']} of {compiled['trials']} compiled trials loaded "
            f"every graph from Inductor's cache, the others compiled "
            f"{compiled['trial_graphs_compiled']} graph(s)."
        )
        lines.append(line)
    if gpu["busy_pct"] is not None:
        lines.append(
            f"- GPU ({', '.join(gpu['devices'])}): {gpu['busy_pct']} % busy on average over the "
            f"search, {gpu['memory_peak_gib']} GiB in use at most (NVML, sampled by the driver)."
        )
    elif any(str(d).startswith("cuda") for d in summary["devices"]):
        lines.append("- GPU busy: not sampled (the driver's machine has no GPU NVML can see).")
    if gpu["trial_memory_peak_gib_median"] is not None:
        lines.append(
            f"- GPU memory per trial (torch's peak): median "
            f"{gpu['trial_memory_peak_gib_median']} GiB, at most "
            f"{gpu['trial_memory_peak_gib_max']:.2f} GiB."
        )
    if summary["devices"]:
        lines.append(f"- Trained on: {', '.join(summary['devices'])}.")
    best = summary.get("best")
    if best:
        params = ", ".join(f"{name}={best[name]}" for name in space.param_names)
        accuracy = best.get("test_track_acc")
        line = f"- Best configuration (by `{space.metric}`): {params}: {best[space.metric]:.3f}"
        if accuracy is not None:
            line += f", test track accuracy {accuracy:.3f}"
        baseline = summary.get("baseline") or {}
        points = baseline.get("best_minus_baseline_test_track_points")
        if points is not None:
            line += (
                f" ({points:+.1f} points against the classical baseline's "
                f"{baseline['test_track_acc']:.3f})"
            )
        lines.append(f"{line}. {summary['seed_noise']}")
    if summary.get("ensemble"):
        lines.append(summary_line(summary["ensemble"]))
    return lines


def finished(summary: dict) -> bool:
    """Whether every planned trial ended (a search stopped by Ctrl+C or SIGINT has not)."""
    trials = summary["trials"]
    return trials["unfinished"] == 0 and trials["total"] >= trials["planned"]


def seed_noise_caveat(space: SearchSpace) -> str:
    """What one seed per configuration means for the best configuration."""
    if space.repeats > 1:
        return (
            f"Each configuration ran {space.repeats} seeds: the tables say which configurations "
            "are within seed noise of the best (a paired t-test over the seeds)."
        )
    return (
        "One seed per configuration: two configurations whose accuracies differ by less than "
        "the seed-to-seed spread (a point or more, docs/accuracy.md) are not told apart by this "
        "search. Run the top configurations again with `repeats:` before calling one better."
    )
