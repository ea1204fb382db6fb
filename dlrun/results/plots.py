"""Plots as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Union

import pandas as pd

from dlrun.results.rundir import atomic_path


def _metric_names(history: pd.DataFrame) -> List[str]:
    skip = {"epoch", "learning_rate", "lr", "epoch_time_s"}
    return [c for c in history.columns if not c.startswith("val_") and c not in skip]


def learning_curves(history: pd.DataFrame, path: Union[str, Path], title: str = "") -> Path:
    """Train and validation curves per metric (one panel each), plus the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _metric_names(history)
    has_lr = "learning_rate" in history.columns and history["learning_rate"].nunique() > 1
    panels = len(names) + int(has_lr)
    fig, axes = plt.subplots(1, max(1, panels), figsize=(4.2 * max(1, panels), 3.4), squeeze=False)
    epochs = history["epoch"] if "epoch" in history else range(1, len(history) + 1)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if has_lr:
        ax = axes[0][len(names)]
        ax.plot(epochs, history["learning_rate"], color="tab:green")
        ax.set_title("learning rate")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
