"""Ranking: one row per trial, and one row per configuration with its seed noise.

A trial row holds its searched parameters, the network it built (channels, SE widths), its seed,
the space's metric (what Optuna saw: the trial's last report of it), the validation and test
accuracies, what its network costs (parameters, multiply-adds and CPU time per segment:
:mod:`raysearch.results.cost`), whether it is on the accuracy-size front
(:mod:`raysearch.results.front`), and a pointer to its checkpoint. Rows are ranked by exactly
the space's metric and mode, no fallback: a trial without it (stopped before its first report)
ranks last.

With repeats, a configuration row aggregates its seeds: n, mean, standard deviation and the
half-width of a 95 % confidence interval of the mean (Student's t with n - 1 degrees of
freedom) for the metric and the test accuracies, ranked by the mean of the metric. Test
numbers never rank anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raysearch.model import SECNN, ModelConfig, count_macs, count_parameters, reduced_width
from raysearch.results.cost import BATCHES, NetworkCosts, time_columns
from raysearch.results.front import pareto_front
from raysearch.results.records import TrialRecord
from raysearch.search.space import SearchSpace

ACCURACIES = ["best_val_acc", "test_acc", "test_track_acc"]
COST_COLUMNS = ["n_params", "macs", *(time_columns(b) for b in BATCHES)]
FRONT = "on_front"  # on the front of validation accuracy against parameters


def cell(value):
    """A parameter value as a leaderboard cell: lists as ``a,b,c`` (``none`` when empty)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return value


def se_widths(model: ModelConfig) -> str:
    """The SE bottleneck width of each block, ``-`` where a block has no SE block."""
    return ",".join(
        str(reduced_width(c, model.ratio)) if i + 1 in model.se_blocks else "-"
        for i, c in enumerate(model.channels)
    )


def metric_columns(space: SearchSpace) -> list[str]:
    return [space.metric] + [c for c in ACCURACIES if c != space.metric]


def trial_frame(
    space: SearchSpace,
    records: list[TrialRecord],
    meta: dict | None = None,
    costs: NetworkCosts | None = None,
) -> pd.DataFrame:
    """One row per trial, ranked by the space's metric. ``costs``: the CPU times of the
    networks (blank without it, or for a network it has not timed); it times those of the
    completed trials only (the front and the ensemble are theirs; a network that ASHA stopped
    shows the time of the same network completed, if one did)."""
    meta = meta or {}
    rows, counts, networks = [], {}, []
    sizing = _sizing(meta.get("shards"))
    sized_ok = sizing is not None
    sizing = sizing or (lambda model: model)
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
            row[param.name] = cell(param.decode(config.get(param.name)))
        row["channels_used"] = cell(list(model.channels)) if model else ""
        row["se_widths"] = se_widths(model) if model else ""
        row["seed"] = train.seed if train else repeat
        for column in metric_columns(space):
            row[column] = result.get(column, np.nan)
        row["epochs_run"] = result.get("epochs_run", result.get("epoch", 0))
        row["n_params"] = result.get("n_params") or (
            _parameter_count(sizing(model), counts) if model else np.nan
        )
        sized = sizing(model) if model and sized_ok else None
        row["macs"] = result.get("macs") or (count_macs(sized) if sized else np.nan)
        networks.append(sized)
        row["wall_s"] = round(float(result.get("time_total_s", np.nan)), 1)
        row["device"] = result.get("device", "")  # cpu, or cuda (the GPU's name)
        row["reused_from"] = result.get("reused_from", "")
        # a twin replays its original's reports: their start-up and memory are not its own
        own = not row["reused_from"]
        row["startup_s"] = _rounded(result.get("startup_s"), 1) if own else np.nan
        # graphs this trial compiled itself (0: all from Inductor's cache; empty: eager)
        row["graphs_compiled"] = _rounded(result.get("graphs_compiled"), 0) if own else np.nan
        row["gpu_mem_peak_gib"] = _rounded(result.get("gpu_mem_peak_gib"), 2) if own else np.nan
        row["features"] = meta.get("features", "")
        row["split_level"] = meta.get("split_level", "")
        row["data"] = meta.get("data", "")
        row["checkpoint"] = record.checkpoint
        rows.append(row)
    _cpu_times(rows, networks, costs)
    columns = [
        "rank",
        "trial_id",
        "status",
        *space.param_names,
        "channels_used",
        "se_widths",
        "seed",
        *metric_columns(space),
        "epochs_run",
        *COST_COLUMNS,
        FRONT,
        "wall_s",
        "startup_s",
        "graphs_compiled",
        "gpu_mem_peak_gib",
        "device",
        "reused_from",
        "features",
        "split_level",
        "data",
        "checkpoint",
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    # a reused trial's network is the one its first trial trained: point to that checkpoint
    checkpoints = dict(zip(frame["trial_id"], frame["checkpoint"], strict=True))
    reused = frame["reused_from"].astype(bool)
    frame.loc[reused, "checkpoint"] = frame.loc[reused, "reused_from"].map(checkpoints).fillna("")
    frame = frame.sort_values(
        [space.metric, "trial_id"],
        ascending=[space.mode == "min", True],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame[FRONT] = mark_front(frame, frame["status"] == "completed", "best_val_acc")
    return frame[columns]


def mark_front(frame: pd.DataFrame, done: pd.Series, accuracy: str) -> pd.Series:
    """Whether each row is on the front of ``accuracy`` against ``n_params`` among the rows
    ``done`` (completed: a stopped trial's accuracy is of a network not fully trained)."""
    if accuracy not in frame:
        return pd.Series(False, index=frame.index)
    values = pd.to_numeric(frame[accuracy], errors="coerce").where(done)
    on = pareto_front(values.to_numpy(), pd.to_numeric(frame["n_params"], errors="coerce"))
    return pd.Series(on, index=frame.index)


def _cpu_times(rows: list[dict], networks: list, costs: NetworkCosts | None) -> None:
    """Each row's CPU time columns from ``costs``, the completed trials' networks timed first
    (when ``costs`` measures) and no other."""
    for row, network in zip(rows, networks, strict=True):
        if costs is not None and network is not None and row["status"] == "completed":
            costs.times(network)
    for row, network in zip(rows, networks, strict=True):
        found = costs.times(network, measure=False) if costs and network else {}
        for column in COST_COLUMNS[2:]:
            row[column] = np.nan if found.get(column) is None else found[column]


def _rounded(value, digits: int) -> float:
    return round(float(value), digits) if value is not None else np.nan


@dataclass(frozen=True)
class EpochCounts:
    """What a search's trials reported, and how much of it twins (trials of a network another
    trial trained, :mod:`raysearch.search.finished_networks`) replayed instead of training. A
    twin that ASHA let go on trained from the start: its epochs count as trained."""

    reported: int  # trial-epochs
    replayed: int  # of those, reported by twins without training
    twins: int  # trials whose reports were all replayed

    @property
    def trained(self) -> int:
        return self.reported - self.replayed


def epoch_counts(trials: pd.DataFrame) -> EpochCounts:
    """:class:`EpochCounts` of a :func:`trial_frame`."""
    if trials.empty:
        return EpochCounts(0, 0, 0)
    epochs = pd.to_numeric(trials["epochs_run"], errors="coerce").fillna(0).astype(int)
    replayed = trials["reused_from"].fillna("").astype(str) != ""
    return EpochCounts(int(epochs.sum()), int(epochs[replayed].sum()), int(replayed.sum()))


def _sizing(shards: str | None):
    """A function giving a model config the input size of ``shards``; None without them."""
    if shards:
        try:
            from raysearch.training.data import model_config_for, sized_as

            sized = model_config_for(shards)  # the manifest, read once
            return lambda model: sized_as(model, sized)
        except (OSError, ValueError, KeyError):
            pass
    return None


def _parameter_count(model: ModelConfig, cache: dict) -> int:
    key = (model.channels, model.ratio, model.se_blocks, model.input_shape, model.head)
    if key not in cache:
        cache[key] = count_parameters(SECNN(model))
    return cache[key]


def interval(values) -> tuple[float, float, float]:
    """(mean, standard deviation, half-width of the 95 % t interval); NaN where undefined."""
    values = np.asarray([v for v in values if not _missing(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan, math.nan
    from scipy import stats

    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))
    return float(values.mean()), std, half


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def config_key(space: SearchSpace) -> list[str]:
    """The columns that identify a configuration (its parameters; not its seed)."""
    return list(space.param_names) or ["channels_used"]


def config_frame(space: SearchSpace, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: seeds, mean / std / 95 % interval, ranked by the mean metric.

    ``checkpoint`` and ``best_seed`` are those of the configuration's seed with the best
    metric (selected on validation, like everything else here)."""
    if trials.empty:
        return pd.DataFrame()
    key = config_key(space)
    rows = []
    for values, group in trials.groupby(key, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        done = group[group["status"] == "completed"]
        row = dict(zip(key, values, strict=True))
        row.update(
            status=f"{len(done)}/{len(group)} seeds completed",
            channels_used=group["channels_used"].iloc[0],
            se_widths=group["se_widths"].iloc[0],
            n_seeds=len(done),
        )
        for column in metric_columns(space):
            mean, std, half = interval(done[column]) if len(done) else (np.nan,) * 3
            row.update({f"{column}_mean": mean, f"{column}_std": std, f"{column}_ci95": half})
        ranked = done.sort_values(space.metric, ascending=space.mode == "min")
        best = ranked.iloc[0] if len(ranked) else group.iloc[0]
        row.update(
            epochs_run_mean=float(done["epochs_run"].mean()) if len(done) else np.nan,
            **{column: group[column].iloc[0] for column in COST_COLUMNS if column in group},
            best_seed=best["seed"],
            device=best.get("device", ""),
            checkpoint=best["checkpoint"],
            trial_ids=",".join(group["trial_id"]),
            features=group["features"].iloc[0],
            split_level=group["split_level"].iloc[0],
            data=group["data"].iloc[0],
        )
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(
        f"{space.metric}_mean", ascending=space.mode == "min", na_position="last", kind="stable"
    )
    frame = frame.reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame[FRONT] = mark_front(frame, frame["n_seeds"] > 0, "best_val_acc_mean")
    return frame
