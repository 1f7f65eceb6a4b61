"""Figures in the style of the report: accuracy and loss per epoch (figures 5.1 / 5.2),
confusion matrices. matplotlib with the Agg backend, written atomically as PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from raysearch.storage import write_bytes_atomic  # noqa: E402


def _save(fig, path: str) -> None:
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
        _save(fig, path)


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
    _save(fig, path)
