"""Plots as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Tuple, Union

import numpy as np
import pandas as pd

from dlrun.results.rundir import atomic_path


def _metric_names(history: pd.DataFrame) -> List[str]:
    skip = {"epoch", "learning_rate", "lr", "epoch_time_s"}
    return [c for c in history.columns if not c.startswith("val_") and c not in skip]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Union[str, Path]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)
    return path


LOG_SPAN = 50.0  # a panel whose values are all positive and span more than this factor gets a log y-axis


def log_scale_fits(*curves: Iterable[float]) -> bool:
    """Whether a panel's curves (train and validation together) read better on a log
    y-axis: every finite value positive and the largest over LOG_SPAN times the smallest
    (a loss falling by orders of magnitude looks flat after epoch 1 on a linear axis)."""
    values = np.concatenate([np.asarray(list(c), dtype=float).ravel() for c in curves] or [np.empty(0)])
    values = values[np.isfinite(values)]
    return bool(values.size and values.min() > 0 and values.max() / values.min() > LOG_SPAN)


def learning_curves(history: pd.DataFrame, path: Union[str, Path], title: str = "") -> Path:
    """Train and validation curves per metric (one panel each), plus the learning rate."""
    plt = _pyplot()
    names = _metric_names(history)
    has_lr = "learning_rate" in history.columns and history["learning_rate"].nunique() > 1
    panels = len(names) + int(has_lr)
    fig, axes = plt.subplots(1, max(1, panels), figsize=(4.2 * max(1, panels), 3.4), squeeze=False)
    epochs = history["epoch"] if "epoch" in history else range(1, len(history) + 1)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        if log_scale_fits(*(history[c] for c in (name, f"val_{name}") if c in history)):
            ax.set_yscale("log")
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
    return _save(fig, path)


def objective_by_trial(trials: pd.DataFrame, objective: str, direction: str, path: Union[str, Path]) -> Path:
    """The objective of each completed trial, and the best so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(trials["trial"], trials["objective"], "o", label="trial")
    best = trials["objective"].cummax() if direction == "max" else trials["objective"].cummin()
    ax.step(trials["trial"], best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def objective_vs_params(trials: pd.DataFrame, objective: str, params: List[Tuple[str, bool]],
                        path: Union[str, Path]) -> Path:
    """One panel per hyperparameter: the objective against its value (log axis for
    log-sampled ones, categories for choices)."""
    plt = _pyplot()
    params = [(name, log) for name, log in params if trials[name].notna().any()]  # skip never-active ones
    cols = min(3, max(1, len(params)))
    rows = max(1, -(-len(params) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    for ax, (name, log) in zip(axes.flat, params):
        rows = trials[trials[name].notna()]
        values = rows[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.plot(values, rows["objective"], "o")
            if log:
                ax.set_xscale("log")
        else:
            labels = sorted(values.astype(str).unique())
            ax.plot([labels.index(v) for v in values.astype(str)], rows["objective"], "o")
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(name)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
