"""The leaderboard and the report's tables, from the trials of a search.

``results/leaderboard.csv``: one row per trial ranked by the search metric — rank, trial id,
status, every searched parameter, the effective channels, seed, best validation accuracy, test
segment accuracy, test track accuracy, epochs run (ASHA may stop a trial early; such a trial has
no test numbers), parameter count, wall seconds.
``results/leaderboard.md``: the top 10 and the best configuration as a ready-to-run
``python -m raysearch.train`` command.
Report tables regenerated from the trials (mean ± std over repeats and equal configurations):
``table_5_1_se_blocks``, ``table_5_2_ratio``, ``table_5_3_channels`` (``.csv`` and ``.md``),
for the spaces that search those parameters. Optuna plots: optimisation history, parameter
importance (two or more parameters), and each numeric parameter against the metric.

Every file is written atomically (temporary file + rename), after every finished trial, so a
reader never sees a half-written table.

``python -m raysearch.leaderboard EXPERIMENT`` rebuilds everything from an experiment folder.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ray.tune import Callback

from raysearch.model import SECNN, ModelConfig, count_parameters
from raysearch.space import SearchSpace, SpaceError, parse_space
from raysearch.storage import join, read_text, write_text_atomic

SPACE_FILE = "raysearch_space.json"
# The report's numbers (segment accuracy; whether its split was by track is not stated)
REPORT_SE = {"": 87.5, "5": 90.2, "4,5": 90.8, "3,4,5": 92.1, "2,3,4,5": 92.7, "1,2,3,4,5": 93.6}
REPORT_RATIO = {8.0: 92.6, 16.0: 93.6, 32.0: 93.0}
REPORT_CHANNELS = {
    "16,32,64,128,64": 90.1,
    "32,64,128,256,128": 93.6,
    "64,128,256,512,256": 93.2,
    "128,256,512,1024,512": 90.8,
}
METRIC_COLUMNS = ["best_val_acc", "test_acc", "test_track_acc"]
TABLE_TITLES = {
    "table_5_1_se_blocks": "Report table 5.1: SE-block placement",
    "table_5_2_ratio": "Report table 5.2: ratio r",
    "table_5_3_channels": "Report table 5.3: channel widths",
}


@dataclass
class TrialRecord:
    trial_id: str
    config: dict
    last_result: dict
    status: str  # completed | stopped early | error | running | pending


def status_of(tune_status: str, last_result: dict) -> str:
    if tune_status == "TERMINATED":
        # only a run that reached its end evaluates the test split (ASHA-stopped ones do not);
        # Tune's own "done" key is not reliable inside callbacks, so it is not used
        return "completed" if "test_acc" in last_result else "stopped early"
    return {"ERROR": "error", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}.get(
        tune_status, tune_status.lower()
    )


def _parameter_count(model: ModelConfig, cache: dict) -> int:
    key = (tuple(model.channels), model.ratio, tuple(model.se_blocks), tuple(model.input_shape))
    if key not in cache:
        cache[key] = count_parameters(SECNN(model))
    return cache[key]


def leaderboard_frame(space: SearchSpace, records: list[TrialRecord]) -> pd.DataFrame:
    """One row per trial, ranked by the space's metric."""
    rows, counts = [], {}
    for record in records:
        result = record.last_result or {}
        config = {k: v for k, v in record.config.items() if k in space.param_names}
        repeat = int(record.config.get("__trial_index__", 0))
        try:
            model, train = space.configs_for(config, repeat) if config else (None, None)
        except (ValueError, TypeError):
            model, train = None, None
        row = {"trial_id": record.trial_id, "status": record.status}
        for param in space.params:
            value = param.decode(config.get(param.name))
            row[param.name] = _cell(value)
        row["channels_used"] = _cell(list(model.channels)) if model else ""
        row["seed"] = train.seed if train else repeat
        for column in ("best_val_acc", "test_acc", "test_track_acc"):
            row[column] = result.get(column, np.nan)
        row["epochs_run"] = result.get("epochs_run", result.get("epoch", 0))
        if result.get("n_params"):
            row["n_params"] = int(result["n_params"])
        elif model is not None:
            row["n_params"] = _parameter_count(model, counts)
        else:
            row["n_params"] = np.nan
        row["wall_s"] = round(float(result.get("time_total_s", np.nan)), 1)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(
            columns=[
                "rank",
                "trial_id",
                "status",
                *space.param_names,
                "channels_used",
                "seed",
                *METRIC_COLUMNS,
                "epochs_run",
                "n_params",
                "wall_s",
            ]
        )
    ascending = space.mode == "min"
    metric = space.metric if space.metric in frame else "best_val_acc"
    frame = frame.sort_values(
        [metric, "trial_id"], ascending=[ascending, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def _cell(value):
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return value


def group_table(
    frame: pd.DataFrame, key: str, report: dict | None, key_label: str, order: list | None = None
) -> pd.DataFrame:
    """Mean ± std of the accuracies over the trials that share ``key``."""
    done = frame[frame["status"] == "completed"]
    if done.empty or key not in done:
        return pd.DataFrame()
    out = []
    keys = order if order is not None else sorted(done[key].unique(), key=_sort_key)
    for value in keys:
        group = done[done[key] == value]
        if group.empty:
            continue
        row = {key_label: value, "runs": len(group)}
        for column, label in (
            ("best_val_acc", "val acc"),
            ("test_acc", "test segment acc"),
            ("test_track_acc", "test track acc"),
        ):
            values = group[column].astype(float) * 100
            std = values.std(ddof=1) if len(values) > 1 else float("nan")
            row[f"{label} (%)"] = (
                f"{values.mean():.1f} ± {std:.1f}"
                if not math.isnan(std)
                else f"{values.mean():.1f}"
            )
        if report is not None:
            ref = report.get(_report_key(value))
            row["report, split unknown (%)"] = "" if ref is None else f"{ref:.1f}"
        out.append(row)
    return pd.DataFrame(out)


def _sort_key(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _report_key(value):
    if isinstance(value, str):
        return "" if value == "none" else value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def report_tables(space: SearchSpace, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The report's tables 5.1 / 5.2 / 5.3 for the parameters this space searches."""
    tables = {}
    names = space.param_names
    if "se_blocks" in names:
        order = ["none", "5", "4,5", "3,4,5", "2,3,4,5", "1,2,3,4,5"]
        present = [o for o in order if o in set(frame.get("se_blocks", []))]
        rest = sorted(set(frame.get("se_blocks", [])) - set(order), key=str)
        tables["table_5_1_se_blocks"] = group_table(
            frame, "se_blocks", REPORT_SE, "SE blocks", present + rest
        )
    if "ratio" in names:
        ratio = frame.assign(ratio=frame["ratio"].astype(float).round(2)) if len(frame) else frame
        tables["table_5_2_ratio"] = group_table(ratio, "ratio", REPORT_RATIO, "ratio r")
    if "channels" in names or "width" in names:
        tables["table_5_3_channels"] = group_table(
            frame, "channels_used", REPORT_CHANNELS, "channels"
        )
    return tables


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no finished trial yet_\n"
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_format(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _format(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def best_command(space: SearchSpace, frame: pd.DataFrame, shards: str | None) -> str:
    done = frame[frame["status"] == "completed"]
    if done.empty:
        return ""
    best = done.iloc[0]
    config = {p: _encode_back(space, p, best[p]) for p in space.param_names}
    model, train = space.configs_for(config, 0)
    parts = ["python -m raysearch.train"]
    if shards:
        parts.append(f"--shards {shards}")
    parts += [
        f"--channels {','.join(map(str, model.channels))}",
        f"--ratio {model.ratio:g}",
        f"--se-blocks '{','.join(map(str, model.se_blocks))}'",
        f"--dropout {model.dropout:g}",
        f"--lr {train.lr:g}",
        f"--batch-size {train.batch_size}",
        f"--epochs {train.epochs}",
    ]
    if train.weight_decay:
        parts.append(f"--weight-decay {train.weight_decay:g}")
    return " \\\n    ".join(parts)


def _encode_back(space: SearchSpace, name: str, cell):
    param = next(p for p in space.params if p.name == name)
    if param.type == "categorical":
        for choice in param.choices:
            if (
                _cell(list(choice) if isinstance(choice, tuple) else choice) == cell
                or choice == cell
            ):
                return param.encode(list(choice) if isinstance(choice, tuple) else choice)
    return cell


def write_results(
    space: SearchSpace,
    records: list[TrialRecord],
    results_dir: str,
    experiment: str = "",
    shards: str | None = None,
    plots: bool = True,
) -> pd.DataFrame:
    """Write the leaderboard, the tables and (``plots``) the plots, each file atomically."""
    frame = leaderboard_frame(space, records)
    os.makedirs(results_dir, exist_ok=True)
    _write_csv(frame, os.path.join(results_dir, "leaderboard.csv"))
    tables = report_tables(space, frame)
    for name, table in tables.items():
        _write_csv(table, os.path.join(results_dir, f"{name}.csv"))
        write_text_atomic(os.path.join(results_dir, f"{name}.md"), markdown_table(table))
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    lines = [
        f"# Leaderboard: {space.name}",
        "",
        f"{space.description.strip()}" if space.description else "",
        "",
        f"Search space `{os.path.basename(space.source)}`; metric `{space.metric}` ({space.mode}); "
        f"sampler {space.sampler}; scheduler {space.scheduler.type}; "
        f"{space.trials} configuration(s) x {space.repeats} repeat(s). Experiment: "
        f"`{experiment}`. Trials: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + ".",
        "",
        "Accuracies are fractions; `test_acc` is segment accuracy, `test_track_acc` the vote of "
        "a track's segments, both on the best-by-validation checkpoint. ASHA-stopped trials "
        "have no test numbers.",
        "",
        "## Top 10",
        "",
        markdown_table(frame.head(10)),
    ]
    command = best_command(space, frame, shards)
    if command:
        lines += ["## Best configuration", "", "```bash", command, "```", ""]
    for name, table in tables.items():
        lines += [
            f"## {TABLE_TITLES[name]}",
            "",
            markdown_table(table),
        ]
    write_text_atomic(os.path.join(results_dir, "leaderboard.md"), "\n".join(lines))
    if plots:
        _plots(space, frame, results_dir)
    return frame


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_text_atomic(path, buffer.getvalue())


def _plots(space: SearchSpace, frame: pd.DataFrame, results_dir: str) -> None:
    done = frame[frame["status"] == "completed"] if len(frame) else frame
    if len(done) < 2:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from raysearch.plots import _save

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna marks its matplotlib plots "experimental"; the notice on every refresh is noise
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize")
    distributions = {p.name: p.optuna_distribution() for p in space.params}
    ordered = done.sort_values("trial_id")
    for _, row in ordered.iterrows():
        params = {p.name: _encode_back(space, p.name, row[p.name]) for p in space.params}
        try:
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, value=float(row["best_val_acc"])
                )
            )
        except ValueError:
            continue  # a value outside the distribution (space edited since): leave it out
    if len(study.trials) < 2:
        return
    from optuna.visualization import matplotlib as optuna_plots

    ax = optuna_plots.plot_optimization_history(study, target_name=space.metric)
    _save(ax.figure, os.path.join(results_dir, "optimization_history.png"))
    if len(space.params) > 1:
        try:
            ax = optuna_plots.plot_param_importances(study, target_name=space.metric)
            _save(ax.figure, os.path.join(results_dir, "param_importances.png"))
        except (RuntimeError, ValueError):
            pass  # importance needs variation in at least one parameter
    for param in space.params:
        if param.type == "categorical":
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for column, marker, label in (
            ("best_val_acc", "o", "validation"),
            ("test_acc", "s", "test (segment)"),
            ("test_track_acc", "^", "test (track)"),
        ):
            ax.scatter(
                done[param.name].astype(float),
                done[column].astype(float),
                marker=marker,
                label=label,
                alpha=0.7,
            )
        if param.log:
            ax.set_xscale("log")
        ax.set_xlabel(param.name)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{param.name} vs accuracy ({len(done)} trials)")
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, os.path.join(results_dir, f"{param.name}_vs_accuracy.png"))


class LeaderboardCallback(Callback):
    """Tune callback: rewrite the results after every finished or failed trial."""

    def __init__(
        self, space: SearchSpace, results_dir: str, experiment: str, shards: str | None = None
    ) -> None:
        self.space = space
        self.results_dir = os.path.abspath(results_dir)
        self.experiment = experiment
        self.shards = shards

    def setup(self, **info) -> None:
        write_text_atomic(join(self.experiment, SPACE_FILE), json.dumps(self.space.raw, indent=1))

    def _refresh(self, trials, ended=None, ended_status: str = "", plots: bool = False) -> None:
        # the trial that just ended still shows its old status while callbacks run
        records = [
            TrialRecord(
                t.trial_id,
                dict(t.config),
                dict(t.last_result or {}),
                status_of(ended_status if t is ended else t.status, t.last_result or {}),
            )
            for t in trials
        ]
        # plots cost 0.3-0.6 s of the driver's CPU: at the end only, not after every trial
        write_results(
            self.space, records, self.results_dir, self.experiment, self.shards, plots=plots
        )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._refresh(trials, trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._refresh(trials, trial, "ERROR")

    def on_experiment_end(self, trials, **info) -> None:
        self._refresh(trials, plots=True)


def records_from_experiment(experiment: str) -> list[TrialRecord]:
    """Trial records of an experiment folder (finished or interrupted), read from storage."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment)
    return [
        TrialRecord(
            t.trial_id,
            dict(t.config),
            dict(t.last_result or {}),
            status_of(t.status, t.last_result or {}),
        )
        for t in analysis.trials
    ]


def load_experiment_space(experiment: str) -> SearchSpace:
    """The search space an experiment ran with (saved beside it when it started)."""
    location = join(experiment, SPACE_FILE)
    return parse_space(json.loads(read_text(location)), location)


def main(argv: list[str] | None = None) -> int:
    from raysearch.storage import normalize

    parser = argparse.ArgumentParser(
        prog="python -m raysearch.leaderboard",
        description="Rebuild results/leaderboard.csv, leaderboard.md, the report's tables and "
        "the plots from a Tune experiment folder (finished or interrupted).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "experiment", help="experiment folder, e.g. ~/ray_results/raysearch/ratio (path or URI)"
    )
    parser.add_argument("--results", default="results", help="output folder")
    args = parser.parse_args(argv)
    experiment = normalize(args.experiment)
    try:
        space = load_experiment_space(experiment)
    except (OSError, FileNotFoundError, SpaceError, KeyError) as exc:
        print(f"error: {experiment}: not a raysearch experiment ({exc})", file=sys.stderr)
        return 2
    frame = write_results(space, records_from_experiment(experiment), args.results, experiment)
    print(f"{len(frame)} trials -> {os.path.join(args.results, 'leaderboard.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
