"""The classical baseline (:mod:`raysearch.baseline`) wherever the results show a CNN number:
``baseline.csv`` (its own file, so ``leaderboard.csv`` stays one row per trial or
configuration; the accuracy columns have the leaderboard's names), a row marked ``baseline``
at the foot of ``leaderboard.md``'s top table and of every report table, a sentence in the
best configuration's block, and the ``baseline`` entry of ``summary.json``
(:func:`baseline_summary`)."""

from __future__ import annotations

import math

import pandas as pd

from raysearch.baseline.result import METHOD, BaselineResult

KIND = "baseline"  # the rank cell and the kind column that mark the row
NO_BASELINE = (
    "No classical baseline in these files yet: a search adds it when it ends (unless "
    "`--no-baseline`), `raysearch leaderboard` when it is cached beside the shards, and "
    "`raysearch baseline --shards SHARDS` computes it alone."
)


def _accuracies(result: BaselineResult) -> dict[str, float]:
    """The baseline's figures under the leaderboard's column names: ``best_val_acc`` and
    ``val_acc`` are its validation segment accuracy at the chosen C."""
    return {
        "best_val_acc": result.val_acc,
        "val_acc": result.val_acc,
        "val_track_acc": result.val_track_acc,
        "test_acc": result.test_acc,
        "test_track_acc": result.test_track_acc,
    }


def baseline_frame(result: BaselineResult, meta: dict) -> pd.DataFrame:
    """``baseline.csv``: one row."""
    return pd.DataFrame(
        [
            {
                "kind": KIND,
                "method": METHOD,
                "C": result.c,
                "best_val_acc": result.val_acc,
                "val_track_acc": result.val_track_acc,
                "test_acc": result.test_acc,
                "test_track_acc": result.test_track_acc,
                "test_segments": result.test_segments,
                "test_tracks": result.test_tracks,
                "train_segments": result.train_segments,
                "n_features": result.n_features,
                "features_s": result.features_s,
                "fit_s": result.fit_s,
                "features": meta.get("features", ""),
                "split_level": meta.get("split_level", ""),
                "data": meta.get("data", ""),
                "shards": meta.get("shards", ""),
            }
        ]
    )


def _last_row(frame: pd.DataFrame, values: dict) -> pd.DataFrame:
    """``frame`` with one more row: ``values`` where it has those columns, blank elsewhere."""
    row = dict.fromkeys(frame.columns, "")
    row.update({k: v for k, v in values.items() if k in row})
    return pd.concat([frame.astype(object), pd.DataFrame([row])], ignore_index=True)


def with_board_row(board: pd.DataFrame, result: BaselineResult) -> pd.DataFrame:
    """The leaderboard's top table with the baseline as its last row: ``baseline`` in the rank
    column, its accuracies in the CNN rows' columns (the ``_mean`` ones of a table of
    configurations too), blank elsewhere."""
    if len(board.columns) == 0:
        return board
    values = {"rank": KIND, "trial_id": result.label, "status": "not searched"}
    for column, value in _accuracies(result).items():
        values.update({column: value, f"{column}_mean": value})
    return _last_row(board, values)


def with_table_row(table: pd.DataFrame, result: BaselineResult, meta: dict) -> pd.DataFrame:
    """A report table (:func:`raysearch.results.tables.group_table`) with the baseline as its
    last row, its accuracies in percent as the configurations' are."""
    if table.empty:
        return table
    values = {
        table.columns[0]: result.label,
        "val acc (%)": f"{100 * result.val_acc:.1f}",
        "test segment acc (%)": f"{100 * result.test_acc:.1f}",
        "test track acc (%)": f"{100 * result.test_track_acc:.1f}",
        "split": meta.get("split_level", ""),
        "data": meta.get("data", ""),
    }
    return _last_row(table, values)


def best_test_track_acc(best: pd.Series) -> float:
    """The best row's test track accuracy (a configuration's: its mean over seeds)."""
    for column in ("test_track_acc", "test_track_acc_mean"):
        if column in best and best[column] is not None:
            return float(best[column])
    return math.nan


def versus_line(best: pd.Series, result: BaselineResult) -> str:
    """The best configuration against the baseline on test track accuracy, in one sentence."""
    return result.beats(best_test_track_acc(best))


def baseline_section(result: BaselineResult) -> list[str]:
    """``leaderboard.md``'s section on the baseline: what it is and what it chose."""
    curve = ", ".join(
        f"{c:g}: {a:.3f}" for c, a in zip(result.c_grid, result.val_acc_by_c, strict=True)
    )
    return [
        "## Classical baseline",
        "",
        f"The row marked `{KIND}` above and in the tables is {METHOD} on the same shards and "
        f"split: {result.description}. Validation segment accuracy by C: {curve}; chosen "
        f"C = {result.c:g}. Test: segment {result.test_acc:.3f} ({result.test_segments} "
        f"segments), track {result.test_track_acc:.3f} ({result.test_tracks} tracks). Its "
        "figures are in `baseline.csv` (the leaderboard's column names; `best_val_acc` is its "
        "validation segment accuracy); `raysearch baseline --shards SHARDS` prints it alone.",
        "",
    ]


def baseline_summary(result: BaselineResult, best_test_track_acc: float | None = None) -> dict:
    """The ``baseline`` entry of ``summary.json``: the baseline's figures and, given the best
    configuration's test track accuracy, by how many points that beats it (negative: it
    does not)."""
    entry = {"method": METHOD, "label": result.label, **result.to_dict()}
    if best_test_track_acc is not None and not math.isnan(best_test_track_acc):
        points = 100 * (best_test_track_acc - result.test_track_acc)
        entry["best_minus_baseline_test_track_points"] = round(points, 2)
    return entry
