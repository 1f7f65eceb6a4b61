"""The search's plots: Optuna's optimisation history and parameter importances of the space's
metric, and each numeric parameter against validation and test accuracy."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from raysearch.space import SearchSpace


def search_plots(space: SearchSpace, trials: pd.DataFrame, results_dir: str) -> None:
    from raysearch.plots import _save, plt

    done = trials[trials[space.metric].notna()] if len(trials) else trials
    if len(done) < 2:
        return
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna marks its matplotlib plots "experimental"; the notice on every refresh is noise
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize")
    distributions = {p.name: p.optuna_distribution() for p in space.params}
    for _, row in done.sort_values("trial_id").iterrows():
        params = {p.name: encode_cell(space, p.name, row[p.name]) for p in space.params}
        try:
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, value=float(row[space.metric])
                )
            )
        except ValueError:
            continue  # a value outside the distribution (space edited since): leave it out
    if len(study.trials) < 2:
        return
    target = f"{space.metric} ({space.mode})"
    ax = optuna_plots.plot_optimization_history(study, target_name=target)
    _save(ax.figure, os.path.join(results_dir, "optimization_history.png"))
    if len(space.params) > 1:
        try:
            ax = optuna_plots.plot_param_importances(study, target_name=target)
            _save(ax.figure, os.path.join(results_dir, "param_importances.png"))
        except (RuntimeError, ValueError):
            pass  # importance needs variation in at least one parameter
    completed = done[done["status"] == "completed"]
    for param in space.params:
        if param.type == "categorical" or completed.empty:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for column, marker, label in (
            ("best_val_acc", "o", "best validation accuracy"),
            ("test_acc", "s", "test segment accuracy"),
            ("test_track_acc", "^", "test track accuracy"),
        ):
            ax.scatter(
                completed[param.name].astype(float),
                completed[column].astype(float),
                marker=marker,
                label=label,
                alpha=0.7,
            )
        if param.log:
            ax.set_xscale("log")
        ax.set_xlabel(param.name)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{param.name} vs accuracy ({len(completed)} completed trials)")
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, os.path.join(results_dir, f"{param.name}_vs_accuracy.png"))


def encode_cell(space: SearchSpace, name: str, cell):
    """A leaderboard cell back to the value Optuna stores for parameter ``name``."""
    from raysearch.results.rank import cell as to_cell

    param = next(p for p in space.params if p.name == name)
    if param.type == "categorical":
        for choice in param.choices:
            value = list(choice) if isinstance(choice, tuple) else choice
            if to_cell(value) == cell or choice == cell:
                return param.encode(value)
    return cell
