"""The files under ``results/``, each written atomically (temporary file + rename), so a reader
never sees a half-written table:

* ``leaderboard.csv``: one row per trial ranked by the space's metric (``rank.trial_frame``);
  with repeats, one row per configuration with its seed noise (``rank.config_frame``) and the
  per-seed rows in ``leaderboard_seeds.csv``;
* ``leaderboard.md``: what the search was (space, metric, split level, features), the top 10,
  the best configuration as a ``python -m raysearch.train`` command that trains exactly it and
  the path of its checkpoint (``python -m raysearch.predict CHECKPOINT FILE`` loads it);
* the report's tables (``tables``), ``.csv`` and ``.md``; the plots (``plots``), when asked.
"""

from __future__ import annotations

import io
import os
import shlex

import pandas as pd

from raysearch.dimensions import command_arguments
from raysearch.results.plots import encode_cell, search_plots
from raysearch.results.rank import config_frame, epoch_counts, trial_frame
from raysearch.results.records import TrialRecord
from raysearch.results.tables import TITLES, markdown_table, report_tables
from raysearch.space import SearchSpace
from raysearch.storage import write_text_atomic

TOP = 10


def best_command(space: SearchSpace, row: pd.Series, shards: str | None) -> str:
    """``python -m raysearch.train`` with exactly the model and training settings of ``row``
    (a trial or a configuration: then its best seed). For a trial that trained on CPUs, also
    its torch thread count: the same run with another count sums floats in another order and
    ends elsewhere (r = 13.4 of ``results/cpu-ratio-50-trials``: best validation accuracy
    0.583 with 1 thread, as in the search, 0.550 with 2). Likewise the space's torch.compile
    mode, when it has one: compiled kernels sum in another order too."""
    config = {p.name: encode_cell(space, p.name, row[p.name]) for p in space.params}
    seed = int(row["best_seed"] if "best_seed" in row else row["seed"])
    model, train = space.configs_for(config, seed - int(space.train.get("seed", 0)))
    parts = ["python -m raysearch.train"]
    if shards:
        parts.append(f"--shards {shlex.quote(shards)}")
    parts += command_arguments(model, train)
    parts.append(f"--seed {train.seed}")
    if train.compile != "off":
        parts.append(f"--compile {train.compile}")
    if str(row.get("device", "")) == "cpu":
        parts.append(f"--threads {train.threads()}")
    return " \\\n    ".join(parts)


def write_results(
    space: SearchSpace,
    records: list[TrialRecord],
    results_dir: str,
    experiment: str = "",
    meta: dict | None = None,
    plots: bool = True,
) -> pd.DataFrame:
    """Write every file; returns the per-trial frame."""
    meta = meta or {}
    trials = trial_frame(space, records, meta)
    board = config_frame(space, trials) if space.repeats > 1 else trials
    os.makedirs(results_dir, exist_ok=True)
    _write_csv(board, os.path.join(results_dir, "leaderboard.csv"))
    if space.repeats > 1:
        _write_csv(trials, os.path.join(results_dir, "leaderboard_seeds.csv"))
    tables = report_tables(space, trials)
    for name, table in tables.items():
        _write_csv(table, os.path.join(results_dir, f"{name}.csv"))
        write_text_atomic(os.path.join(results_dir, f"{name}.md"), markdown_table(table))
    write_text_atomic(
        os.path.join(results_dir, "leaderboard.md"),
        _markdown(space, trials, board, tables, experiment, meta),
    )
    if plots:
        search_plots(space, trials, results_dir)
    return trials


def _epochs_line(trials: pd.DataFrame) -> str:
    """What the search trained: its trial-epochs, less those twins replayed."""
    if trials.empty:
        return ""
    counts = epoch_counts(trials)
    line = f"Trial-epochs: {counts.reported}"
    if counts.twins:
        line += (
            f", of which {counts.replayed} replayed by {counts.twins} twin(s) without training "
            f"({counts.trained} trained)"
        )
    return line + "."


def _markdown(space, trials, board, tables, experiment, meta) -> str:
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    split = meta.get("split_level", "unknown")
    lines = [
        f"# Leaderboard: {space.name}",
        "",
        space.description.strip(),
        "",
        f"Search space `{os.path.basename(space.source)}`; metric `{space.metric}` "
        f"({space.mode}); sampler {space.sampler}; scheduler {space.scheduler.type}; "
        f"{space.trials} configuration(s) x {space.repeats} seed(s). Shards: "
        f"`{meta.get('shards', '?')}` ({meta.get('features', '?')} features, split by "
        f"**{split}**). Experiment: `{experiment}`. Trials: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + ". "
        + _epochs_line(trials),
        "",
    ]
    if split == "segment":
        lines += [
            "**Segment split**: overlapping segments of one track are in train and test; "
            "these test accuracies are inflated (see docs/accuracy.md).",
            "",
        ]
    lines += [
        f"Ranked by `{space.metric}` ({space.mode})"
        + (
            ", the mean over seeds; ± is the half-width of the 95 % t interval"
            if space.repeats > 1
            else ""
        )
        + ". Accuracies are fractions: `test_acc` is segment accuracy, `test_track_acc` the "
        "vote of a track's segments, both of the best-by-validation weights. ASHA-stopped "
        "trials have no test numbers.",
        "",
        f"## Top {TOP}",
        "",
        markdown_table(board.drop(columns=["checkpoint", "trial_ids"], errors="ignore").head(TOP)),
    ]
    if space.repeats > 1:
        done = board[board["n_seeds"] > 0] if len(board) else board
    else:
        done = board[board["status"] == "completed"] if len(board) else board
    if len(done):
        best = done.iloc[0]
        lines += [
            "## Best configuration",
            "",
            "Trains exactly this configuration again:",
            "",
            "```bash",
            best_command(space, best, meta.get("shards")),
            "```",
            "",
        ]
        if best.get("checkpoint"):
            lines += [
                f"Its checkpoint (best-by-validation weights): `{best['checkpoint']}`; "
                f"`python -m raysearch.predict {shlex.quote(str(best['checkpoint']))} FILE...` "
                "classifies audio with it.",
                "",
            ]
    for name, table in tables.items():
        lines += [f"## {TITLES[name]}", "", markdown_table(table)]
    return "\n".join(lines)


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_text_atomic(path, buffer.getvalue())
