"""Figures of the image explanations (the methods compute, these draw). Each function
returns a matplotlib Figure and saves nothing. Images are (h, w, 1) grayscale or
(h, w, 3) color, in the model's input units; `value_range` is the training data's
(min, max), so every input is drawn on the same scale."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

CELL = 2.3     # inches per image
ALPHA = 0.85   # overlay opacity at a map's strongest value (weaker values fade into the input)
LUMA = np.array([0.299, 0.587, 0.114])  # RGB -> gray


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _unit(image: np.ndarray, value_range: Optional[Tuple[float, float]]) -> np.ndarray:
    """`image` scaled to [0, 1] by `value_range` (None: its own min and max)."""
    image = np.asarray(image, dtype="float64")
    lo, hi = value_range if value_range is not None else (float(image.min()), float(image.max()))
    return np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(image)


def _show(ax: Any, image: np.ndarray, value_range: Optional[Tuple[float, float]], dim: float = 1.0) -> None:
    """An input image: gray for one channel, color for three; `dim` < 1 fades it under an overlay."""
    image = _unit(image, value_range)
    if image.ndim == 3 and image.shape[-1] == 3 and dim < 1:
        image = image @ LUMA  # a colour input under an overlay: gray, so the overlay's colours read
    elif image.ndim == 3 and image.shape[-1] != 3:
        image = image.mean(axis=-1)
    if image.ndim == 2:
        ax.imshow(image * dim, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image * dim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax: Any, heat: np.ndarray, cmap: str, vmin: float, vmax: float, interpolation: str = "nearest") -> None:
    """`heat` (h, w) in colour over what the axes show, opaque where |heat| is largest."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    heat = np.asarray(heat, dtype="float64")
    rgba = colormaps[cmap](Normalize(vmin, vmax)(heat))
    top = max(abs(vmin), abs(vmax))
    rgba[..., 3] = ALPHA * np.clip(np.abs(heat) / top, 0, 1) if top > 0 else 0.0
    ax.imshow(rgba, interpolation=interpolation)


def _magnitude(maps: np.ndarray) -> np.ndarray:
    """(h, w[, c]) -> (h, w): |values| summed over channels."""
    maps = np.abs(np.asarray(maps, dtype="float64"))
    return maps.sum(axis=-1) if maps.ndim == 3 else maps


def _grid(rows: int, cols: int, title: str) -> Tuple[Any, np.ndarray]:
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(CELL * cols, CELL * rows + 0.4), squeeze=False,
                             layout="constrained")
    fig.suptitle(title, fontsize=10)
    return fig, axes


def saliency_figure(images: np.ndarray, saliency: np.ndarray, smooth: np.ndarray, titles: Sequence[str],
                    value_range: Tuple[float, float], title: str) -> Any:
    """One row per explained row: input | saliency | SmoothGrad, each map over the faded input
    (brighter: the target's score is more sensitive to that pixel)."""
    fig, axes = _grid(len(images), 3, title)
    for i, (image, plain, smoothed) in enumerate(zip(images, saliency, smooth)):
        _show(axes[i, 0], image, value_range)
        axes[i, 0].set_title(titles[i], fontsize=7)
        for ax, heat, label in ((axes[i, 1], _magnitude(plain), "saliency"),
                                (axes[i, 2], _magnitude(smoothed), "SmoothGrad")):
            _show(ax, image, value_range, dim=0.5)
            _overlay(ax, heat, "hot", 0.0, float(heat.max()))
            ax.set_title(label, fontsize=7)
    return fig


def attribution_figure(images: np.ndarray, attributions: np.ndarray, titles: Sequence[str],
                       value_range: Tuple[float, float], title: str) -> Any:
    """One row per explained row: input | signed attributions (red: for the target, blue:
    against it; one symmetric scale per row) over the faded input."""
    fig, axes = _grid(len(images), 2, title)
    for i, (image, attribution) in enumerate(zip(images, attributions)):
        signed = np.asarray(attribution, dtype="float64")
        signed = signed.sum(axis=-1) if signed.ndim == 3 else signed
        top = float(np.abs(signed).max())
        _show(axes[i, 0], image, value_range)
        axes[i, 0].set_title(titles[i], fontsize=7)
        _show(axes[i, 1], image, value_range, dim=0.5)
        _overlay(axes[i, 1], signed, "bwr", -top, top)
        axes[i, 1].set_title(f"attributions (|max| {top:.2g}, sum {signed.sum():.3g})", fontsize=7)
    return fig


def attention_gradients_figure(images: np.ndarray, attention: np.ndarray, attributions: np.ndarray,
                               titles: Sequence[str], value_range: Tuple[float, float]) -> Any:
    """One row per explained image read as a sequence: input | attention each token (row or
    patch) receives, over the faded input | integrated gradients summed per token (red: for
    the target, blue: against)."""
    fig, axes = _grid(len(images), 3, "attention rollout beside integrated gradients, token by token "
                                      "(a token: an image row or patch)")
    for i, (image, share, credit) in enumerate(zip(images, attention, attributions)):
        _show(axes[i, 0], image, value_range)
        axes[i, 0].set_title(titles[i], fontsize=7)
        _show(axes[i, 1], image, value_range, dim=0.5)
        _overlay(axes[i, 1], share, "Oranges", 0.0, float(np.max(share)) or 1.0)
        axes[i, 1].set_title("attention (rollout)", fontsize=7)
        top = float(np.abs(credit).max()) or 1.0
        _show(axes[i, 2], image, value_range, dim=0.5)
        _overlay(axes[i, 2], credit, "bwr", -top, top)
        axes[i, 2].set_title("integrated gradients per token", fontsize=7)
    return fig


def grad_cam_figure(images: np.ndarray, heatmaps: np.ndarray, titles: Sequence[str],
                    value_range: Tuple[float, float], layer: str, map_shape: Tuple[int, int]) -> Any:
    """One row per explained row: input | its Grad-CAM heatmap (upsampled to the input)
    over the faded input."""
    fig, axes = _grid(len(images), 2, f"Grad-CAM of layer {layer} ({map_shape[0]}x{map_shape[1]} map, "
                                      "upsampled), over the input")
    for i, (image, heat) in enumerate(zip(images, heatmaps)):
        _show(axes[i, 0], image, value_range)
        axes[i, 0].set_title(titles[i], fontsize=7)
        _show(axes[i, 1], image, value_range, dim=0.5)
        _overlay(axes[i, 1], heat, "jet", 0.0, float(np.max(heat)), interpolation="bilinear")
        axes[i, 1].set_title(f"Grad-CAM ({layer})" if np.max(heat) > 0 else f"Grad-CAM ({layer}): all zero",
                             fontsize=7)
    return fig


def feature_figure(images: List[List[np.ndarray]], titles: List[List[str]], title: str) -> Any:
    """One row per layer, one column per unit: the input that most excites each unit, each
    on its own contrast scale."""
    cols = max(len(row) for row in images)
    fig, axes = _grid(len(images), cols, title)
    for i, (row, names) in enumerate(zip(images, titles)):
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(row):
                ax.axis("off")
                continue
            _show(ax, row[j], None)
            ax.set_title(names[j], fontsize=7)
    return fig
