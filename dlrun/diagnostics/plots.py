"""gradients.png: the gradient statistics of a run (dlrun.diagnostics.statistics) as
two panels a student can read next to the learning curves: how large each layer's
gradient is, and how many of its units are dead (ReLU) or saturated (sigmoid/tanh)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np
import pandas as pd

from dlrun.results.plots import _pyplot, _save

FIRST_SHADE = 0.35  # the first layer's place on the colormap: lighter would vanish on white
COLORMAP = "Blues"  # sequential: the first layer light, the output layer dark
NO_UNITS_NOTE = "no ReLU, sigmoid or tanh layers"
NO_GRADIENTS_NOTE = "no finite, non-zero gradient norms"
UNIT_LINES = (("dead_fraction", "-", "dead (ReLU)"), ("saturated_fraction", "--", "saturated (sigmoid/tanh)"))
LEGEND_AT = 0.85    # the panels take the figure's width up to here; the layer legend the rest


def layer_colors(layers: List[str]) -> Dict[str, Any]:
    """One color per layer, light (first layer) to dark (output layer)."""
    import matplotlib

    cmap = matplotlib.colormaps[COLORMAP]
    shades = np.linspace(FIRST_SHADE, 1.0, len(layers)) if len(layers) > 1 else [1.0]
    return {layer: cmap(shade) for layer, shade in zip(layers, shades)}


def _positive(values: pd.Series) -> np.ndarray:
    """The values a log axis can show; NaN, inf, zero and negatives become gaps."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def gradient_plot(frame: pd.DataFrame, path: Union[str, Path], title: str = "") -> None:
    """Write `path` (PNG): left, the gradient norm of every kernel layer by epoch (log
    scale, one line per layer in model order); right, the fraction of dead ReLU units
    (solid) and of saturated sigmoid/tanh units (dashed) per layer. One legend names
    the layers, whose colors both panels share. `frame` has statistics.STAT_COLUMNS."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.2), sharex=True)
    layers = list(dict.fromkeys(frame["layer"])) if len(frame) else []
    colors = layer_colors(layers)
    by_layer = {layer: frame[frame["layer"] == layer].sort_values("epoch") for layer in layers}

    drawn = False
    for layer, rows in by_layer.items():
        norms = _positive(rows["grad_norm"])
        if np.isfinite(norms).any():
            left.plot(rows["epoch"], norms, marker="o", markersize=2.5, color=colors[layer])
            drawn = True
    if drawn:
        left.set_yscale("log")
    else:
        _note(left, NO_GRADIENTS_NOTE)
    left.set_title("Gradient norm per layer")
    left.set_ylabel("||d loss / d kernel|| (L2 norm, log scale)")

    shown = []  # the (column, line style, meaning) drawn, for the panel's legend
    for layer, rows in by_layer.items():
        for kind in UNIT_LINES:
            values = pd.to_numeric(rows[kind[0]], errors="coerce")
            if values.notna().any():
                right.plot(rows["epoch"], values, kind[1], marker="o", markersize=2.5, color=colors[layer])
                shown += [kind] if kind not in shown else []
    if shown:
        right.legend(handles=[Line2D([], [], color="0.3", linestyle=style, label=what) for _, style, what in shown],
                     fontsize=8, loc="best")
    else:
        _note(right, NO_UNITS_NOTE)
    right.set_ylim(-0.02, 1.02)
    right.set_title("Dead and saturated units per layer")
    right.set_ylabel("fraction of the layer's units")

    for ax in (left, right):
        ax.set_xlabel("epoch (0 = before training)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if layers:
        activation = {layer: rows["activation"].iloc[0] for layer, rows in by_layer.items()}
        fig.legend(handles=[Line2D([], [], color=colors[layer], marker="o", markersize=2.5,
                                   label=f"{layer} ({activation[layer]})") for layer in layers],
                   title="layer (input to output)", loc="center left", bbox_to_anchor=(LEGEND_AT, 0.5),
                   fontsize=8 if len(layers) <= 12 else 6, title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, LEGEND_AT, 1) if layers else None)
    _save(fig, path)
