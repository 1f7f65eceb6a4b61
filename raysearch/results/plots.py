"""Every figure raysearch draws, with matplotlib's Agg backend, written atomically as PNG:
a run's accuracy and loss per epoch (report figures 5.1 / 5.2) and its confusion matrix; a
search's Optuna optimisation history and parameter importances of the space's metric, and each
numeric parameter against validation and test accuracy."""

from __future__ import annotations

import io
import os
import warnings

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from raysearch.search.space import SearchSpace  # noqa: E402
from raysearch.storage import write_bytes_atomic  # noqa: E402


def save_figure(fig, path: str) -> None:
    """Write a matplotlib figure as PNG (atomically, to a path or a URI) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def training_curves(history: list[dict], accuracy_path: str, loss_path: str) -> None:
    """Train vs validation accuracy, and train vs validation loss, per epoch."""
    epochs = [h["epoch"] for h in history]
    for path, key, label in ((accuracy_path, "acc", "Accuracy"), (loss_path, "loss", "Loss")):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(epochs, [h.get(f"train_{key}") for h in history], "o-", label="training")
        ax.plot(epochs, [h.get(f"val_{key}") for h in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label.lower())
        ax.set_title(f"{label} on training / validation set")
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, path)


def confusion(matrix: list[list[int]], labels: list[str], path: str, title: str = "") -> None:
    import numpy as np

    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j]:
                ax.text(
                    j,
                    i,
                    int(values[i, j]),
                    ha="center",
                    va="center",
                    color="white" if values[i, j] > values.max() / 2 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title or "confusion matrix")
    save_figure(fig, path)


def search_plots(
    space: SearchSpace,
    trials: pd.DataFrame,
    results_dir: str,
    baseline_track_acc: float | None = None,
) -> list[str]:
    """The search's figures in ``results_dir``; returns the names of the files written.
    ``baseline_track_acc``: the classical baseline's test track accuracy, drawn as a line
    across each parameter-vs-accuracy plot."""
    written: list[str] = []

    def save(fig, name: str) -> None:
        save_figure(fig, os.path.join(results_dir, name))
        written.append(name)

    done = trials[trials[space.metric].notna()] if len(trials) else trials
    if len(done) < 2:
        return written
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
        return written
    target = f"{space.metric} ({space.mode})"
    ax = optuna_plots.plot_optimization_history(study, target_name=target)
    save(ax.figure, "optimization_history.png")
    if len(space.params) > 1:
        try:
            ax = optuna_plots.plot_param_importances(study, target_name=target)
            save(ax.figure, "param_importances.png")
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
        if baseline_track_acc is not None:
            ax.axhline(
                baseline_track_acc,
                color="grey",
                linestyle="--",
                label="classical baseline, test track accuracy",
            )
        if param.log:
            ax.set_xscale("log")
        ax.set_xlabel(param.name)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{param.name} vs accuracy ({len(completed)} completed trials)")
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, f"{param.name}_vs_accuracy.png")
    return written


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


def front_plot(board: pd.DataFrame, results_dir: str, baseline=None, ensemble=None) -> list[str]:
    """``accuracy_vs_parameters.png``: the completed networks' validation accuracy against
    their parameters, the front (:mod:`raysearch.results.front`) drawn through its points, and
    the classical baseline's and the ensemble's validation accuracy as reference lines (the
    ensemble also as a point at its members' summed parameters). Returns the name written, or
    nothing with fewer than two completed networks."""
    from raysearch.results.front import front_line

    mean = "_mean" if "best_val_acc_mean" in board else ""
    done = board[board["n_seeds"] > 0] if mean else board[board["status"] == "completed"]
    accuracy = pd.to_numeric(done.get(f"best_val_acc{mean}"), errors="coerce")
    parameters = pd.to_numeric(done.get("n_params"), errors="coerce")
    if accuracy.notna().sum() < 2 or parameters.notna().sum() < 2:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    on = done["on_front"].astype(bool) if "on_front" in done else pd.Series(False, done.index)
    for chosen, color, label in ((~on, "tab:blue", "network"), (on, "tab:red", "on the front")):
        if chosen.any():
            ax.scatter(parameters[chosen], accuracy[chosen], color=color, label=label)
    x, y = front_line(accuracy.to_numpy(), parameters.to_numpy())
    ax.step(x, y, where="post", color="tab:red", alpha=0.7)
    if ensemble is not None:
        ax.axhline(ensemble.val["segment_acc"], color="tab:green", linestyle="--",
                   label=f"{ensemble.label} (validation)")  # fmt: skip
        summed = ensemble.cost("n_params")
        if summed == summed:  # not NaN
            ax.scatter([summed], [ensemble.val["segment_acc"]], marker="*", s=160,
                       color="tab:green")  # fmt: skip
    if baseline is not None:
        ax.axhline(baseline.val_acc, color="grey", linestyle=":",
                   label="classical baseline (validation)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("best validation accuracy (segments)" + (", mean over seeds" if mean else ""))
    ax.set_title(f"Accuracy against size ({len(done)} completed networks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, os.path.join(results_dir, "accuracy_vs_parameters.png"))
    return ["accuracy_vs_parameters.png"]
