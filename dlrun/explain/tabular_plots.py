"""Figures of the tabular explanations (permutation, SHAP, LIME). The methods compute;
these only draw, and return the Figure unsaved (the explain task writes the files)."""
from __future__ import annotations

import warnings
from typing import Any, List, Sequence

import numpy as np
import pandas as pd

from dlrun.explain.base import numpy_global_rng

POSITIVE, NEGATIVE = "#2ca02c", "#d62728"  # LIME: green pushes toward the explained output, red away


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _height(bars: int) -> float:
    return 1.2 + 0.35 * max(bars, 1)


def permutation_figure(table: pd.DataFrame, xlabel: str, top: int, title: str) -> Any:
    """Horizontal bars of `importance_mean` with `importance_std` error bars, largest on top."""
    plt = _pyplot()
    shown = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, _height(len(shown))))
    ax.barh(shown["feature"].astype(str), shown["importance_mean"].fillna(0.0), xerr=shown["importance_std"].fillna(0.0),
            color="#1f77b4", ecolor="#333333", capsize=3)
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def shap_summary_figure(values: np.ndarray, data: np.ndarray, names: List[str], base: np.ndarray,
                        top: int, title: str, xlabel: str) -> Any:
    """SHAP's beeswarm of `values` (rows x source columns), points colored by `data`, the
    feature values as read (NaN, e.g. a text column, is drawn grey)."""
    import shap

    plt = _pyplot()
    shown = min(top, len(names))
    fig, ax = plt.subplots(figsize=(8.0, _height(shown + 1)))
    explanation = shap.Explanation(values=np.asarray(values, dtype="float64"), base_values=np.asarray(base),
                                   data=np.asarray(data, dtype="float64"), feature_names=list(names))
    with numpy_global_rng(0), warnings.catch_warnings():  # the beeswarm jitters: keep it repeatable
        warnings.filterwarnings("ignore", message="All-NaN slice")  # a text column: no colors to scale
        shap.plots.beeswarm(explanation, max_display=shown, ax=ax, plot_size=None, show=False)
    ax.set_title(title)
    ax.set_xlabel(f"SHAP value ({xlabel})")
    fig.tight_layout()
    return fig


def lime_figure(conditions: Sequence[str], weights: Sequence[float], title: str, xlabel: str,
                alert: bool = False) -> Any:
    """One row's LIME explanation: a bar per condition, green positive, red negative,
    the largest weight on top; `alert` (a misclassified row) draws the title in red."""
    plt = _pyplot()
    order = np.argsort(np.abs(np.asarray(weights, dtype="float64")))  # smallest first: barh draws bottom-up
    labels = [str(conditions[i]) for i in order]
    values = [float(weights[i]) for i in order]
    fig, ax = plt.subplots(figsize=(7.5, _height(len(values))))
    ax.barh(labels, values, color=[POSITIVE if v > 0 else NEGATIVE for v in values])
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, color=NEGATIVE if alert else "black")
    fig.tight_layout()
    return fig
