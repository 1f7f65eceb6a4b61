"""The search's ensemble: its completed networks' kept predictions
(:mod:`raysearch.training.predictions`), the selection (:mod:`raysearch.results.ensemble`), and
the ``ensemble`` row wherever the classical baseline has one: ``ensemble.json`` (which
``raysearch predict`` takes in place of a checkpoint), a row at the foot of ``leaderboard.md``'s
top table and of every report table, a section of ``leaderboard.md`` and the ``ensemble`` entry
of ``summary.json``.

The candidates are the completed trials, one per network: a twin's checkpoint is its
original's (:func:`raysearch.results.rank.trial_frame`), so the two are one candidate, named
after the original. The start is the best trial by the search's metric. The ensemble's test
figures are computed once the weights are chosen, from the test predictions; the best trial's
beside them come from its own kept predictions too (float16), so both sides are scored alike.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from raysearch.errors import UserError
from raysearch.results.ensemble import DEFAULT_ROUNDS, Score, combine, score, select
from raysearch.results.tables import COST_TITLES, cost_cell
from raysearch.storage import exists, join, read_text, write_text_atomic
from raysearch.training.predictions import load_predictions

ENSEMBLE_FILE = "ensemble.json"
# beside the experiment, in the folder Tune's resume leaves alone (raysearch.results.runs)
EXPERIMENT_ENSEMBLE = "_raysearch/ensemble.json"
FORMAT = "raysearch-ensemble/1"
KIND = "ensemble"  # the rank cell that marks the row
SELECTION = (
    "validation track accuracy, ties broken by validation segment log-loss "
    "(greedy forward selection with replacement, Caruana et al. 2004)"
)
COSTS = ("n_params", "macs", "cpu_ms_per_segment_b1", "cpu_ms_per_segment_b64")


class EnsembleUnavailable(UserError):
    """No ensemble can be built: no completed trial, or none kept its predictions."""


@dataclass(frozen=True)
class EnsembleResult:
    """What ``ensemble.json`` holds. ``members``: trial id, checkpoint, count, weight, its
    own validation / test track accuracy and cost; ``val`` / ``test``: the ensemble's
    ``segment_acc``, ``track_acc``, ``log_loss``; ``best_trial``: the start's own figures."""

    members: list[dict]
    val: dict
    test: dict
    best_trial: dict
    rounds: int
    rounds_kept: int
    candidates: list[str]  # the networks (their first trial) it chose from
    skipped: list[str] = field(default_factory=list)  # completed, but no predictions kept
    experiment: str = ""
    selection: str = SELECTION
    format: str = FORMAT

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def label(self) -> str:
        return f"ensemble of {self.size}" if self.size > 1 else "ensemble of 1 (the best trial)"

    @property
    def note(self) -> str:
        """What the ensemble is, when it is the best trial alone."""
        if len(self.candidates) == 1:
            return (
                f"One completed trial with predictions: the ensemble is that trial "
                f"({self.members[0]['trial_id']})."
            )
        if self.size == 1:
            return (
                f"No addition to the best trial ({self.members[0]['trial_id']}) improved "
                f"validation track accuracy or log-loss over {self.rounds} rounds: the "
                "ensemble is that trial alone."
            )
        return ""

    def cost(self, column: str) -> float:
        """A cost summed over the members: an ensemble runs every one of its networks."""
        values = [m.get(column) for m in self.members]
        if any(v is None or _nan(v) for v in values):
            return math.nan
        return float(sum(values))

    def to_dict(self) -> dict:
        return {**asdict(self), "size": self.size, "label": self.label, "note": self.note}

    @classmethod
    def from_dict(cls, payload: dict) -> EnsembleResult:
        known = {k: v for k, v in payload.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _plain(value):
    if value is None or _nan(value):
        return None
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    return value


def _figures(result: Score) -> dict:
    return {
        "segment_acc": round(result.segment_acc, 6),
        "track_acc": round(result.track_acc, 6),
        "log_loss": round(result.log_loss, 6),
    }


def candidates_of(trials: pd.DataFrame) -> pd.DataFrame:
    """The completed trials, one row per network (the first in rank order; a twin's row
    stands for its original), in rank order; ``candidate`` names the network's own trial."""
    done = trials[trials["status"] == "completed"] if len(trials) else trials
    if done.empty:
        return done.assign(candidate=[])
    original = done["reused_from"].fillna("").astype(str)
    named = done.assign(candidate=original.where(original != "", done["trial_id"]))
    return named.drop_duplicates("candidate", keep="first")


def build_ensemble(
    trials: pd.DataFrame,
    experiment: str = "",
    start_checkpoint: str | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> EnsembleResult:
    """The ensemble of a :func:`~raysearch.results.rank.trial_frame`'s completed networks,
    selected on their validation predictions from the trial whose checkpoint is
    ``start_checkpoint`` (the leaderboard's best; default the best-ranked completed one).
    Raises :class:`EnsembleUnavailable` when there is nothing to choose from."""
    rows = candidates_of(trials)
    if rows.empty:
        raise EnsembleUnavailable("no completed trial: no ensemble")
    if start_checkpoint:
        rows = pd.concat([rows[rows["checkpoint"] == start_checkpoint],
                          rows[rows["checkpoint"] != start_checkpoint]])  # fmt: skip
    kept, predictions, skipped = [], [], []
    for _, row in rows.iterrows():
        try:
            found = load_predictions(str(row["checkpoint"])) if row["checkpoint"] else None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # none, or unreadable
            found = None
        if found is None or (predictions and not _same_segments(predictions[0], found)):
            skipped.append(str(row["candidate"]))
            continue
        kept.append(row)
        predictions.append(found)
    if not predictions or str(kept[0]["candidate"]) != str(rows.iloc[0]["candidate"]):
        first = rows.iloc[0]["candidate"]
        raise EnsembleUnavailable(
            f"the best trial ({first}) kept no predictions (predictions.npz beside its model.pt:"
            " trials trained before raysearch kept them have none): no ensemble"
        )
    val, test = predictions[0]["val"], predictions[0]["test"]
    chosen = select([p["val"].probs for p in predictions], val.label, val.track, 0, rounds)
    weights = chosen.weights
    test_score = score(combine([p["test"].probs for p in predictions], weights), test.label,
                       test.track)  # fmt: skip
    members = []
    for i in chosen.members:
        row, own = kept[i], predictions[i]
        members.append({
            "trial_id": str(row["candidate"]),
            "checkpoint": str(row["checkpoint"]),
            "count": int(chosen.counts[i]),
            "weight": float(weights[i]),  # count / rounds kept, unrounded
            "val": _figures(score(own["val"].probs, val.label, val.track)),
            "test": _figures(score(own["test"].probs, test.label, test.track)),
            **{c: _plain(row.get(c)) for c in COSTS},
        })  # fmt: skip
    return EnsembleResult(
        members=members,
        val=_figures(chosen.score),
        test=_figures(test_score),
        best_trial={
            "trial_id": members[0]["trial_id"],
            "val": members[0]["val"],
            "test": members[0]["test"],
        },
        rounds=rounds,
        rounds_kept=chosen.kept,
        candidates=[str(r["candidate"]) for r in kept],
        skipped=skipped,
        experiment=experiment,
    )


def _same_segments(first: dict, other: dict) -> bool:
    return all(first[s].same_segments(other[s]) for s in ("val", "test"))


def save_ensemble(result: EnsembleResult, location: str) -> None:
    """``ensemble.json`` at ``location`` (a path or a URI)."""
    write_text_atomic(location, json.dumps(result.to_dict(), indent=1))


def load_ensemble(location: str) -> EnsembleResult:
    payload = json.loads(read_text(location))
    if payload.get("format") != FORMAT:
        raise ValueError(f"{location}: not a raysearch ensemble (format {payload.get('format')})")
    return EnsembleResult.from_dict(payload)


def experiment_ensemble(experiment: str, trials: pd.DataFrame) -> EnsembleResult | None:
    """The ensemble kept beside ``experiment`` when it was chosen from exactly the networks
    that are completed now (else None: ``raysearch ensemble`` builds it again)."""
    location = join(experiment, EXPERIMENT_ENSEMBLE)
    try:
        if not exists(location):
            return None
        result = load_ensemble(location)
    except (OSError, ValueError, TypeError):
        return None
    now = set(candidates_of(trials)["candidate"].astype(str))
    return result if set(result.candidates) | set(result.skipped) == now else None


# --- the ensemble beside the CNN rows (as results.baseline does for the baseline) ---------


def _accuracies(result: EnsembleResult) -> dict[str, float]:
    """The ensemble's figures under the leaderboard's column names."""
    return {
        "best_val_acc": result.val["segment_acc"],
        "val_acc": result.val["segment_acc"],
        "val_track_acc": result.val["track_acc"],
        "test_acc": result.test["segment_acc"],
        "test_track_acc": result.test["track_acc"],
    }


def _last_row(frame: pd.DataFrame, values: dict) -> pd.DataFrame:
    row = dict.fromkeys(frame.columns, "")
    row.update({k: v for k, v in values.items() if k in row})
    return pd.concat([frame.astype(object), pd.DataFrame([row])], ignore_index=True)


def with_board_row(board: pd.DataFrame, result: EnsembleResult) -> pd.DataFrame:
    """The leaderboard's top table with the ensemble as one more row: ``ensemble`` in the rank
    column, its accuracies and its summed cost in the CNN rows' columns."""
    if len(board.columns) == 0:
        return board
    values = {"rank": KIND, "trial_id": result.label, "status": "selected on validation"}
    for column, value in _accuracies(result).items():
        values.update({column: value, f"{column}_mean": value})
    for column in COSTS:
        value = result.cost(column)
        counted = column in ("n_params", "macs") and not math.isnan(value)
        values[column] = int(value) if counted else value
    return _last_row(board, values)


def with_table_row(table: pd.DataFrame, result: EnsembleResult, meta: dict) -> pd.DataFrame:
    """A report table with the ensemble as one more row (accuracies in percent)."""
    if table.empty:
        return table
    values = {
        table.columns[0]: result.label,
        "val acc (%)": f"{100 * result.val['segment_acc']:.1f}",
        "test segment acc (%)": f"{100 * result.test['segment_acc']:.1f}",
        "test track acc (%)": f"{100 * result.test['track_acc']:.1f}",
        "split": meta.get("split_level", ""),
        "data": meta.get("data", ""),
    }
    values.update({title: cost_cell(result.cost(c)) for c, title in COST_TITLES.items()})
    return _last_row(table, values)


def margin_points(result: EnsembleResult, other: float | None) -> float | None:
    """The ensemble's test track accuracy minus ``other``'s, in points."""
    if other is None or _nan(other):
        return None
    return round(100 * (result.test["track_acc"] - other), 2)


def ensemble_summary(result: EnsembleResult, baseline_test_track_acc: float | None) -> dict:
    """The ``ensemble`` entry of ``summary.json``."""
    return {
        "label": result.label,
        "size": result.size,
        "members": [
            {"trial_id": m["trial_id"], "weight": m["weight"], "checkpoint": m["checkpoint"]}
            for m in result.members
        ],
        "val": result.val,
        "test": result.test,
        "best_trial": result.best_trial,
        "rounds": result.rounds,
        "rounds_kept": result.rounds_kept,
        "candidates": len(result.candidates),
        "selection": result.selection,
        "minus_best_trial_test_track_points": margin_points(
            result, result.best_trial["test"]["track_acc"]
        ),
        "minus_baseline_test_track_points": margin_points(result, baseline_test_track_acc),
        "note": result.note,
    }


def summary_line(entry: dict) -> str:
    """The summary's line on the ensemble (from :func:`ensemble_summary`'s entry)."""
    best = entry["best_trial"]
    if entry["note"] and entry["size"] == 1:
        return f"- Ensemble: {entry['note']}"
    points = entry["minus_best_trial_test_track_points"]
    figures = (
        f"test track accuracy {entry['test']['track_acc']:.3f} against the best trial's "
        f"{best['test']['track_acc']:.3f}"
    )
    if points > 0:
        line = f"- The ensemble of {entry['size']} models: {points:+.1f} points over the best "
        line += f"trial on test track accuracy ({figures})"
    else:
        line = f"- The ensemble of {entry['size']} models does not help on test: {points:+.1f} "
        line += f"points against the best trial on test track accuracy ({figures})"
    baseline = entry.get("minus_baseline_test_track_points")
    if baseline is not None:
        line += f", {baseline:+.1f} against the classical baseline"
    weights = ", ".join(f"{m['trial_id']} x {m['weight']:.2f}" for m in entry["members"])
    return (
        f"{line}. Chosen on validation only ({entry['val']['track_acc']:.3f} validation "
        f"track accuracy, the best trial's {best['val']['track_acc']:.3f}): {weights}."
    )


def ensemble_section(result: EnsembleResult) -> list[str]:
    """``leaderboard.md``'s section on the ensemble: how it was chosen, its members."""
    lines = [
        "## Ensemble of the search's networks",
        "",
        f"The row marked `{KIND}` above and in the tables averages the class probabilities of "
        f"the search's completed networks with these weights, chosen by {result.selection} "
        f"from the best trial over {len(result.candidates)} network(s): {result.rounds} "
        f"rounds, of which the first {result.rounds_kept} built the best ensemble on validation "
        "(the one kept); test predictions played no part. Its cost columns are the members' "
        "summed: it runs every member.",
        "",
    ]
    if result.note:
        lines += [result.note, ""]
    lines += [
        "| member | weight | val track acc alone | test track acc alone | params |",
        "|---|---|---|---|---|",
    ]
    for m in result.members:
        lines.append(
            f"| {m['trial_id']} | {m['weight']:.2f} | {m['val']['track_acc']:.3f} | "
            f"{m['test']['track_acc']:.3f} | {cost_cell(m.get('n_params'))} |"
        )
    lines += [
        "",
        f"Ensemble: validation track accuracy {result.val['track_acc']:.3f} (log-loss "
        f"{result.val['log_loss']:.3f}), test segment {result.test['segment_acc']:.3f}, track "
        f"{result.test['track_acc']:.3f}. `raysearch predict {ENSEMBLE_FILE} FILE...` (this "
        "folder's) classifies audio with it; `raysearch ensemble EXPERIMENT` builds it again.",
        "",
    ]
    if result.skipped:
        lines += [
            f"Completed trials without kept predictions, left out: {', '.join(result.skipped)}.",
            "",
        ]
    return lines
