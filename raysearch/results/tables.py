"""The report's tables 5.1 (SE placement), 5.2 (ratio r) and 5.3 (channel widths), and the
augmentation ablation, regenerated from the completed trials, with the report's numbers beside.

Each row is a configuration: its seeds, and for validation accuracy, test segment accuracy and
test track accuracy the mean ± the half-width of its 95 % t interval over seeds. The best row
is the one with the best mean validation accuracy (selection never looks at test numbers).
``within noise of best`` compares every other row with it on test segment accuracy with a
two-sided paired t-test over the seeds both have (scipy.stats.ttest_rel): ``yes`` when
p >= 0.05, i.e. the difference is within what changing the seed does; it needs 2 or more
common seeds. Tables 5.2 and 5.3 also give what each network costs (:data:`COST_TITLES`:
parameters, multiply-adds and CPU time per segment, :mod:`raysearch.results.cost`).
"""

from __future__ import annotations

import math

import pandas as pd

from raysearch.results.rank import interval
from raysearch.search.space import SearchSpace

# The report's numbers (segment accuracy; whether its split was by track is not stated)
REPORT_SE = {"": 87.5, "5": 90.2, "4,5": 90.8, "3,4,5": 92.1, "2,3,4,5": 92.7, "1,2,3,4,5": 93.6}
REPORT_RATIO = {8.0: 92.6, 16.0: 93.6, 32.0: 93.0}
REPORT_CHANNELS = {
    "16,32,64,128,64": 90.1,
    "32,64,128,256,128": 93.6,
    "64,128,256,512,256": 93.2,
    "128,256,512,1024,512": 90.8,
}
TITLES = {
    "table_5_1_se_blocks": "Report table 5.1: SE-block placement",
    "table_5_2_ratio": "Report table 5.2: ratio r",
    "table_5_3_channels": "Report table 5.3: channel widths",
    "table_ablation_augment": "Ablation: head and augmentation (not in the report)",
}
AUGMENT_KEYS = ("head", "freq_masks", "freq_width", "time_masks", "time_width", "mixup_alpha")
NOISE_P = 0.05
COST_TITLES = {  # the cost columns of tables 5.2 and 5.3 (and of the ensemble's row)
    "n_params": "params",
    "macs": "MACs / segment",
    "cpu_ms_per_segment_b1": "CPU ms / segment (batch 1)",
    "cpu_ms_per_segment_b64": "CPU ms / segment (batch 64)",
}
# the report's own figure: GTZAN segment accuracy, whatever data this table's rows are on
REPORT_COLUMN = "report on GTZAN, split unknown (%)"


def _pm(values) -> str:
    mean, _, half = interval([v * 100 for v in values])
    if math.isnan(mean):
        return ""
    return f"{mean:.1f}" if math.isnan(half) else f"{mean:.1f} ± {half:.1f}"


def within_noise(best: pd.DataFrame, other: pd.DataFrame, column: str = "test_acc") -> str:
    """Paired t-test over common seeds of ``column``: 'yes (p=…)', 'no (p=…)' or 'n/a'."""
    paired = (
        best.set_index("seed")[column]
        .to_frame("best")
        .join(other.set_index("seed")[column].to_frame("other"), how="inner")
    )
    paired = paired.dropna()
    if len(paired) < 2:
        return f"n/a ({len(paired)} common seed{'s' if len(paired) != 1 else ''})"
    from scipy import stats

    diff = paired["best"] - paired["other"]
    if diff.abs().max() == 0:
        return "yes (identical)"
    p = float(stats.ttest_rel(paired["best"], paired["other"]).pvalue)
    return f"{'yes' if p >= NOISE_P else 'no'} (p={p:.2f})"


def group_table(
    trials: pd.DataFrame,
    keys: list[str],
    label: str,
    report: dict | None = None,
    order: list | None = None,
    extra: dict | None = None,
) -> pd.DataFrame:
    """Mean ± 95 % interval per configuration of the completed trials sharing ``keys``."""
    done = trials[trials["status"] == "completed"] if len(trials) else trials
    if done.empty or any(k not in done for k in keys):
        return pd.DataFrame()
    groups = {}
    for values, group in done.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        name = (
            values[0]
            if len(keys) == 1
            else ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        )
        groups[name] = group
    names = [n for n in (order or []) if n in groups] + sorted(
        (n for n in groups if n not in (order or [])), key=_sort_key
    )
    best = max(names, key=lambda n: _merit(groups[n]))
    rows = []
    for name in names:
        group = groups[name]
        row = {label: name, "seeds": len(group)}
        for column, title in (extra or {}).items():
            row[title] = _one_value(group[column]) if column in group else ""
        row["val acc (%)"] = _pm(group["best_val_acc"])
        row["test segment acc (%)"] = _pm(group["test_acc"])
        row["test track acc (%)"] = _pm(group["test_track_acc"])
        row["within noise of best"] = (
            "best (by val)" if name == best else within_noise(groups[best], group)
        )
        row["split"] = group["split_level"].iloc[0] if "split_level" in group else ""
        row["data"] = group["data"].iloc[0] if "data" in group else ""
        if report is not None:
            ref = report.get(_report_key(name))
            row[REPORT_COLUMN] = "" if ref is None else f"{ref:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def cost_cell(value) -> str:
    """A parameter count, multiply-adds or milliseconds as a table cell (blank when unknown)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(value):
        return ""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _one_value(column: pd.Series) -> str:
    """The first trial's value; for a cost, the one the configuration's trials share (its
    network's), or their range when they differ (channels over several r, in table 5.3)."""
    if column.name not in COST_TITLES:
        return column.iloc[0]
    numbers = pd.to_numeric(column, errors="coerce").dropna()
    if numbers.empty:
        return ""
    low, high = numbers.min(), numbers.max()
    return cost_cell(low) if low == high else f"{cost_cell(low)} - {cost_cell(high)}"


def _merit(group: pd.DataFrame) -> tuple[float, int]:
    """Mean validation accuracy; on a tie (twins: ratios that build the same network report
    the same curve), the row of the leaderboard's better-ranked trial, so the table and the
    leaderboard name the same best configuration."""
    rank = int(group["rank"].min()) if "rank" in group else 0
    return float(group["best_val_acc"].mean()), -rank


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


def report_tables(space: SearchSpace, trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables for the parameters this space searches."""
    tables = {}
    names = space.param_names
    if "se_blocks" in names:
        order = ["none", "5", "4,5", "3,4,5", "2,3,4,5", "1,2,3,4,5"]
        tables["table_5_1_se_blocks"] = group_table(
            trials, ["se_blocks"], "SE blocks", REPORT_SE, order
        )
    if "ratio" in names:
        rounded = (
            trials.assign(ratio=trials["ratio"].astype(float).round(2)) if len(trials) else trials
        )
        tables["table_5_2_ratio"] = group_table(
            rounded,
            ["ratio"],
            "ratio r",
            REPORT_RATIO,
            extra={"se_widths": "SE widths", **COST_TITLES},
        )
    if "channels" in names or "width" in names:
        tables["table_5_3_channels"] = group_table(
            trials, ["channels_used"], "channels", REPORT_CHANNELS, extra=COST_TITLES
        )
    augment = [k for k in AUGMENT_KEYS if k in names]
    if augment:
        tables["table_ablation_augment"] = group_table(trials, augment, "configuration")
    return {name: table for name, table in tables.items() if not table.empty}


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
