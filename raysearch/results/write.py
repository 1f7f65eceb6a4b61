"""The files under ``results/``, each written atomically (temporary file + rename), so a reader
never sees a half-written table:

* ``leaderboard.csv``: one row per trial ranked by the space's metric (``rank.trial_frame``);
  with repeats, one row per configuration with its seed noise (``rank.config_frame``) and the
  per-seed rows in ``leaderboard_seeds.csv``;
* ``leaderboard.md``: what the search was (space, metric, split level, features), the top 10,
  the best configuration as a ``python -m raysearch.train`` command that trains exactly it and
  the path of its checkpoint (``python -m raysearch.predict CHECKPOINT FILE`` loads it);
* the report's tables (``tables``), ``.csv`` and ``.md``; the plots (``plots``), when asked;
* ``baseline.csv``, given the classical baseline of the same shards
  (:mod:`raysearch.results.baseline`, which also puts it in ``leaderboard.md`` and the tables);
* ``ensemble.json``, given the ensemble of the search's networks
  (:mod:`raysearch.results.search_ensemble`: a row beside the baseline's, a section of
  ``leaderboard.md``, the summary), and ``accuracy_vs_parameters.png``, the accuracy-size front;
* ``.raysearch-results.json``: the experiment these files are of and every file written for
  it, so that the next search into the folder removes exactly those (:func:`claim_results_dir`)
  and a folder never mixes two searches' files.
"""

from __future__ import annotations

import io
import json
import os
import shlex

import pandas as pd

from raysearch.baseline.result import BaselineResult
from raysearch.errors import UserError
from raysearch.results import baseline as base
from raysearch.results import search_ensemble as ens
from raysearch.results.cost import NetworkCosts
from raysearch.results.ensemble import DEFAULT_ROUNDS
from raysearch.results.plots import encode_cell, front_plot, search_plots
from raysearch.results.rank import config_frame, trial_frame
from raysearch.results.records import TrialRecord
from raysearch.results.runs import read_runs
from raysearch.results.summary import summarize, summary_lines
from raysearch.results.tables import TITLES, markdown_table, report_tables
from raysearch.search.dimensions import command_arguments
from raysearch.search.space import SearchSpace
from raysearch.storage import join, write_text_atomic

TOP = 10
RECORD = ".raysearch-results.json"  # which experiment a results folder holds, and its files
# what a search writes; a folder holding one of these without a RECORD holds unknown results
OUR_FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard_seeds.csv")


class ResultsFolderError(UserError):
    """A results folder holds files this search did not write and cannot account for."""


def _record(results_dir: str) -> dict | None:
    try:
        with open(os.path.join(results_dir, RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_results_dir(results_dir: str, experiment: str) -> None:
    """Refuse ``results_dir`` when it holds a leaderboard without a record: its files cannot
    be told from the user's. Reads only (a search makes every refusal before it removes
    anything: :func:`claim_results_dir` comes after)."""
    if _record(results_dir) is None:
        found = [n for n in OUR_FILES if os.path.exists(os.path.join(results_dir, n))]
        if found:
            raise ResultsFolderError(
                f"{results_dir}: holds {', '.join(found)} of another search (no {RECORD} says "
                "which); move them away or choose another --results folder"
            )


def claim_results_dir(results_dir: str, experiment: str) -> None:
    """Make ``results_dir`` this experiment's before a search writes into it: the files an
    earlier search of another experiment wrote there are removed (their record lists them;
    nothing else in the folder is touched), after :func:`check_results_dir`'s refusal."""
    check_results_dir(results_dir, experiment)
    record = _record(results_dir)
    if record is None or record.get("experiment") == experiment:
        return
    for name in record.get("files", []):
        path = os.path.join(results_dir, name)
        if os.path.dirname(name) == "" and os.path.isfile(path):
            os.remove(path)
    os.remove(os.path.join(results_dir, RECORD))


def best_command(space: SearchSpace, row: pd.Series, shards: str | None) -> str:
    """``python -m raysearch.train`` with exactly the model and training settings of ``row``
    (a trial or a configuration: then its best seed). For a trial that trained on CPUs, also
    its torch thread count: the same run with another count sums floats in another order and
    ends elsewhere (an example in results/README.md). Likewise the space's torch.compile
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
    baseline: BaselineResult | None = None,
    ensemble: ens.EnsembleResult | None = None,
    measure: bool = False,
) -> pd.DataFrame:
    """Write every file; returns the per-trial frame. ``baseline``: the classical baseline of
    the same shards, shown beside the CNN rows (``baseline.csv``, a row in the tables);
    ``ensemble``: the ensemble of the search's networks, likewise (``ensemble.json``; without
    one, an ``ensemble.json`` left in the folder is removed: it would be out of date).
    ``measure``: time the networks' CPU forward passes not timed yet (else their columns stay
    blank until then; :mod:`raysearch.results.cost`)."""
    meta = meta or {}
    costs = NetworkCosts(experiment, measure=measure)
    trials = trial_frame(space, records, meta, costs)
    costs.save()
    board = config_frame(space, trials) if space.repeats > 1 else trials
    os.makedirs(results_dir, exist_ok=True)
    written = ["leaderboard.csv", "leaderboard.md"]
    _write_csv(board, os.path.join(results_dir, "leaderboard.csv"))
    if space.repeats > 1:
        _write_csv(trials, os.path.join(results_dir, "leaderboard_seeds.csv"))
        written.append("leaderboard_seeds.csv")
    if baseline is not None:
        _write_csv(base.baseline_frame(baseline, meta), os.path.join(results_dir, "baseline.csv"))
        written.append("baseline.csv")
    ensemble_file = os.path.join(results_dir, ens.ENSEMBLE_FILE)
    if ensemble is not None:
        ens.save_ensemble(ensemble, ensemble_file)
        written.append(ens.ENSEMBLE_FILE)
    elif os.path.isfile(ensemble_file):
        os.remove(ensemble_file)
    tables = report_tables(space, trials)
    if ensemble is not None:
        tables = {n: ens.with_table_row(t, ensemble, meta) for n, t in tables.items()}
    if baseline is not None:
        tables = {n: base.with_table_row(t, baseline, meta) for n, t in tables.items()}
    for name, table in tables.items():
        _write_csv(table, os.path.join(results_dir, f"{name}.csv"))
        write_text_atomic(
            os.path.join(results_dir, f"{name}.md"),
            f"# {TITLES[name]}\n\n{_data_line(meta)}\n\n{markdown_table(table)}",
        )
        written += [f"{name}.csv", f"{name}.md"]
    best = best_row(space, board)
    summary = summarize(space, trials, read_runs(experiment), best, baseline, ensemble)
    write_text_atomic(os.path.join(results_dir, "summary.json"), json.dumps(summary, indent=1))
    write_text_atomic(
        os.path.join(results_dir, "leaderboard.md"),
        _markdown(space, board, tables, experiment, meta, summary, best, baseline, ensemble,
                  costs.describe()),
    )  # fmt: skip
    written += ["summary.json"]
    if plots:
        line = baseline.test_track_acc if baseline is not None else None
        written += search_plots(space, trials, results_dir, line)
        written += front_plot(board, results_dir, baseline, ensemble)
    _keep_record(results_dir, experiment, written)
    return trials


def _keep_record(results_dir: str, experiment: str, written: list[str]) -> None:
    """Add ``written`` to the folder's record of this experiment's files."""
    record = _record(results_dir)
    files = (
        set(record.get("files", [])) if record and record.get("experiment") == experiment else set()
    )
    payload = {"experiment": experiment, "files": sorted(files | set(written))}
    write_text_atomic(os.path.join(results_dir, RECORD), json.dumps(payload, indent=1))


def _data_line(meta: dict) -> str:
    """Where the numbers come from; synthetic data said plainly beside the report's GTZAN."""
    data = meta.get("data") or "unknown data"
    line = f"Data: {data}, split by {meta.get('split_level', 'unknown')}."
    if data.startswith("synthetic"):
        line += (
            " These are synthetic accuracies, a demonstration of the machinery: the report's "
            "column is GTZAN and is not comparable."
        )
    return line


def best_row(space: SearchSpace, board: pd.DataFrame) -> pd.Series | None:
    """The leaderboard's best finished row (a trial, or with repeats a configuration with at
    least one finished seed), by the space's metric; None before any finished."""
    if space.repeats > 1:
        done = board[board["n_seeds"] > 0] if len(board) else board
    else:
        done = board[board["status"] == "completed"] if len(board) else board
    return done.iloc[0] if len(done) else None


def finish_results(
    space: SearchSpace,
    records: list[TrialRecord],
    results_dir: str,
    experiment: str,
    meta: dict | None = None,
    baseline: BaselineResult | None = None,
    ensemble: bool = True,
    ended: bool = True,
    say=print,
) -> ens.EnsembleResult | None:
    """At a search's end (``ended``: every planned trial ended), what waits for it: the
    ensemble of its networks (unless not ``ensemble``; kept beside the experiment too, for
    ``raysearch leaderboard``) and the CPU times of its networks, then the results written
    again with them. A search that did not end leaves both for its resumed end."""
    if not ended:
        say("ensemble and CPU times: left for the end of the search (not finished)")
        return None
    meta = meta or {}
    result = None
    if ensemble:
        try:
            result = build_search_ensemble(space, records, experiment, meta)  # times the networks
        except ens.EnsembleUnavailable as exc:
            say(f"ensemble: {exc}")
        except Exception as exc:  # a comparison only: never the search's failure
            say(f"warning: ensemble failed ({type(exc).__name__}: {exc})")
    write_results(
        space, records, results_dir, experiment, meta, baseline=baseline, ensemble=result,
        measure=True,
    )  # fmt: skip
    return result


def build_search_ensemble(
    space: SearchSpace,
    records: list[TrialRecord],
    experiment: str,
    meta: dict | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> ens.EnsembleResult:
    """The ensemble of a search's completed networks, from the leaderboard's best, kept beside
    the experiment (``ensemble.json``), with its members' CPU times (measured now if they were
    not, and kept); raises :class:`~.search_ensemble.EnsembleUnavailable` when there is none
    to build."""
    costs = NetworkCosts(experiment, measure=True)
    trials = trial_frame(space, records, meta or {}, costs)
    costs.save()
    board = config_frame(space, trials) if space.repeats > 1 else trials
    best = best_row(space, board)
    start = str(best["checkpoint"]) if best is not None else None
    result = ens.build_ensemble(trials, experiment, start, rounds)
    if experiment:
        ens.save_ensemble(result, join(experiment, ens.EXPERIMENT_ENSEMBLE))
    return result


def _markdown(
    space, board, tables, experiment, meta, summary, best, baseline, ensemble, timed_on
) -> str:
    split = meta.get("split_level", "unknown")
    lines = [
        f"# Leaderboard: {space.name}",
        "",
        space.description.strip(),
        "",
        _data_line(meta),
        "",
        f"Search space `{os.path.basename(space.source)}`; metric `{space.metric}` "
        f"({space.mode}); sampler {space.sampler}; scheduler {space.scheduler.type}; "
        f"{space.trials} configuration(s) x {space.repeats} seed(s). Shards: "
        f"`{meta.get('shards', '?')}` ({meta.get('features', '?')} features, split by "
        f"**{split}**). Experiment: `{experiment}`.",
        "",
        "## Search summary",
        "",
        *summary_lines(summary, space),
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
        markdown_table(_top(board, baseline, ensemble)),
        f"`n_params`: parameters; `macs`: multiply-adds per 3 s segment; `cpu_ms_per_segment_b1`"
        f" / `_b64`: a CPU forward pass at batch 1 / 64, per segment, on {timed_on}; "
        "`on_front`: on the front of validation accuracy against parameters among the "
        "completed networks (`accuracy_vs_parameters.png`).",
        "",
    ]
    if best is not None:
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
        if baseline is not None:
            lines += [base.versus_line(best, baseline), ""]
        if best.get("checkpoint"):
            lines += [
                f"Its checkpoint (best-by-validation weights): `{best['checkpoint']}`; "
                f"`python -m raysearch.predict {shlex.quote(str(best['checkpoint']))} FILE...` "
                "classifies audio with it.",
                "",
            ]
    if ensemble is not None:
        lines += ens.ensemble_section(ensemble)
    lines += base.baseline_section(baseline) if baseline is not None else [base.NO_BASELINE, ""]
    for name, table in tables.items():
        lines += [f"## {TITLES[name]}", "", markdown_table(table)]
    return "\n".join(lines)


def _top(
    board: pd.DataFrame, baseline: BaselineResult | None, ensemble: ens.EnsembleResult | None
) -> pd.DataFrame:
    """The top table: the first ``TOP`` rows, and the ensemble's and the baseline's below."""
    top = board.drop(columns=["checkpoint", "trial_ids"], errors="ignore").head(TOP)
    if ensemble is not None and not top.empty:
        top = ens.with_board_row(top, ensemble)
    return top if baseline is None or top.empty else base.with_board_row(top, baseline)


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_text_atomic(path, buffer.getvalue())
