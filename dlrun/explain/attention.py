"""`explain.methods=[attention]`: what a model=attention run attends to, set beside where
integrated gradients put the credit, for the same test rows (the exercise: compare the
interpretability of a model with attention against its gradients).

Two readings of the attention weights, per token (a word, or an image row or patch):
- last layer: the weight each token receives in the last block, averaged over heads and over
  the tokens that attend (padding left out);
- rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): the blocks'
  head-averaged weights, each mixed half and half with the identity for the residual path,
  multiplied through the layers, so that a token's share counts what flowed through others.
Integrated gradients run token by token for text (dlrun.explain.token_gradients) and pixel by
pixel for images, summed over each token's pixels. Their agreement is a Spearman rank
correlation per row between the rollout and |attribution|, and whether both pick the same top
token. Pure functions first; the method (`attention_weights`) at the bottom."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.attention_maps import received
from dlrun.explain.base import Explained, MethodResult


# ----------------------------------------------------------------- attention, token by token
def rollout(layers: List[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) of a stack of layers' weights, each (rows,
    heads, tokens, tokens): per layer 0.5 * mean over heads + 0.5 * identity, rows
    renormalised, multiplied from the first layer up; then, per token, what it receives
    averaged over the real tokens (`mask`); padding 0, each row summing to 1."""
    mask = np.asarray(mask, dtype=bool)
    n, tokens = mask.shape
    eye = np.eye(tokens)
    flow = np.broadcast_to(eye, (n, tokens, tokens)).copy()
    keys = mask[:, None, :].astype("float64")
    for scores in layers:
        mixed = 0.5 * np.asarray(scores, dtype="float64").mean(axis=1) * keys + 0.5 * eye
        mixed /= np.maximum(mixed.sum(axis=2, keepdims=True), 1e-300)
        flow = mixed @ flow
    share = received(flow[:, None], mask)
    return share / np.maximum(share.sum(axis=1, keepdims=True), 1e-300)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two vectors (NaN when either is constant or has < 2 values)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def agreement(attention: np.ndarray, attributions: np.ndarray, mask: np.ndarray) -> Tuple[List[float], List[bool]]:
    """Per row: Spearman of attention against |attribution| over its real tokens, and whether
    both rank the same token first."""
    rhos, same = [], []
    for a, g, m in zip(attention, np.abs(attributions), np.asarray(mask, dtype=bool)):
        rhos.append(spearman(a[m], g[m]))
        same.append(bool(m.any()) and int(np.argmax(np.where(m, a, -np.inf))) == int(np.argmax(np.where(m, g, -np.inf))))
    return rhos, same


# ----------------------------------------------------------------- images read as sequences
def image_tokens(values: np.ndarray, patch: Optional[Tuple[int, int]]) -> np.ndarray:
    """(rows, h, w[, c]) pixel values -> (rows, tokens): summed over each token's pixels (an
    image row when `patch` is None, else patches in row-major order, as the model reads them)."""
    v = np.asarray(values, dtype="float64")
    v = v.reshape(*v.shape[:3], -1).sum(axis=3)  # channels
    n, h, w = v.shape
    if patch is None:
        return v.sum(axis=2)
    ph, pw = patch
    return v.reshape(n, h // ph, ph, w // pw, pw).sum(axis=(2, 4)).reshape(n, -1)


def token_pixels(values: np.ndarray, shape: Tuple[int, int], patch: Optional[Tuple[int, int]]) -> np.ndarray:
    """(rows, tokens) -> (rows, h, w): each token's value spread over its pixels (for drawing)."""
    h, w = shape
    v = np.asarray(values, dtype="float64")
    if patch is None:
        return np.repeat(v[:, :, None], w, axis=2)
    ph, pw = patch
    grid = v.reshape(len(v), h // ph, w // pw)
    return np.kron(grid, np.ones((1, ph, pw)))


def _patch(model: Any) -> Optional[Tuple[int, int]]:
    """The patch size the model's image token layer reads (None: one token per image row)."""
    patch = getattr(model.get_layer("tokens"), "patch_size", None)
    return None if patch is None else (int(patch[0]), int(patch[1]))


# ----------------------------------------------------------------- the method (registry)
def attention_weights(model: Explained, options: ExplainConfig) -> MethodResult:
    """attention.png (the last block's heads), attention.csv (per token: last layer, rollout,
    integrated gradients) and attention_vs_gradients.png (rollout beside integrated gradients)."""
    from dlrun.attention_maps import attention_figure, attention_layers, attention_scores, token_labels
    from dlrun.explain.gradients import IG_MAX_STEPS, _rows, ig_attributions

    x, targets, outputs, titles = _rows(model)
    names = attention_layers(model.model)
    if not names:
        raise ValueError("the model has no attention layer")
    layers = [np.asarray(attention_scores(model.model, x, name)) for name in names]
    steps = max(options.ig_steps, 128)
    patch = None if model.text is not None else _patch(model.model)
    if model.text is not None:
        from dlrun.explain.token_gradients import row_tokens, token_attributions

        words = row_tokens(model, x)
        mask = np.array([[bool(w) for w in row] for row in words])
        attributions, _ = token_attributions(model.model, x, targets, min(steps, IG_MAX_STEPS))
    else:
        pixels = ig_attributions(model.model, x, np.zeros_like(x), targets, min(steps, IG_MAX_STEPS))
        attributions = image_tokens(pixels, patch)
        tokens = attributions.shape[1]
        words = [token_labels(None, x[0], tokens, patch)] * len(x)
        mask = np.ones((len(x), tokens), dtype=bool)
    last = received(layers[-1], mask)
    flow = rollout(layers, mask)
    rhos, same = agreement(flow, attributions, mask)
    table = _table(model.rows, words, last, flow, attributions)
    figures = {"attention.png": attention_figure(layers[-1], x, text=model.text, titles=titles, patch_size=patch,
                                                 layer=names[-1])}
    if model.text is not None:
        from dlrun.explain.text_plots import token_figure

        figures["attention_vs_gradients.png"] = token_figure(
            words, [flow, attributions], ["attention (rollout)", "integrated gradients"],
            [f"{t}: Spearman {r:.2f}" if r == r else t for t, r in zip(titles, rhos)],
            "attention rollout (orange: share of attention) beside integrated gradients (red: for the "
            "predicted class, blue: against)", signed=[False, True])
    else:
        from dlrun.explain.image_plots import attention_gradients_figure

        shape = tuple(x.shape[1:3])
        figures["attention_vs_gradients.png"] = attention_gradients_figure(
            x, token_pixels(flow, shape, patch), token_pixels(attributions, shape, patch),
            [f"{t}\nSpearman {r:.2f}" if r == r else t for t, r in zip(titles, rhos)], model.value_range)
    return MethodResult(tables={"attention.csv": table}, figures=figures,
                        lines=_lines(names, words, flow, attributions, rhos, same))


def _table(rows: List[int], words: List[List[str]], last: np.ndarray, flow: np.ndarray,
           attributions: np.ndarray) -> pd.DataFrame:
    records = [{"test_row": row, "position": p, "token": token, "attention_last_layer": float(last[i, p]),
                "attention_rollout": float(flow[i, p]), "integrated_gradients": float(attributions[i, p])}
               for i, (row, tokens) in enumerate(zip(rows, words)) for p, token in enumerate(tokens) if token]
    return pd.DataFrame(records, columns=["test_row", "position", "token", "attention_last_layer",
                                          "attention_rollout", "integrated_gradients"])


def _lines(names: List[str], words: List[List[str]], flow: np.ndarray, attributions: np.ndarray,
           rhos: List[float], same: List[bool]) -> List[str]:
    known = [r for r in rhos if r == r]
    median = f"{np.median(known):.2f}" if known else "n/a"
    lines = [f"attention rollout over {len(names)} block(s) against |integrated gradients|, token by token: "
             f"Spearman rank correlation median {median} over {len(rhos)} rows "
             f"({', '.join('n/a' if r != r else f'{r:.2f}' for r in rhos)}); both put the same token first in "
             f"{sum(same)} of {len(same)} rows"]
    for row_words, a, g in zip(words, flow, attributions):
        top_a = int(np.argmax(a))
        top_g = int(np.argmax(np.abs(g)))
        lines.append(f"most attended: '{row_words[top_a]}' ({a[top_a]:.0%} of the rollout); most credited by "
                     f"integrated gradients: '{row_words[top_g]}' ({g[top_g]:+.3g})")
    return lines
