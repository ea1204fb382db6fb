"""Figures of text explanations: each row's words in order, each word's box coloured by a
value (an attribution: red for, blue against; an attention weight: shades of one colour).
Several values per row (attention and integrated gradients) are drawn as aligned lines, so a
reader can see whether they point at the same words. Returns matplotlib Figures, saves nothing."""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from dlrun.explain.image_plots import _pyplot

WRAP = 70            # characters per line of words before wrapping
LINE = 0.32          # inches per line of words
CHAR = 0.105         # inches per character (the box of a word)


def _layout(words: Sequence[str]) -> List[tuple]:
    """(word index, line, start column) of each non-padding word, wrapped at WRAP characters."""
    placed, line, column = [], 0, 0
    for i, word in enumerate(words):
        if not word:
            continue
        if column and column + len(word) > WRAP:
            line, column = line + 1, 0
        placed.append((i, line, column))
        column += len(word) + 2
    return placed


def token_figure(rows_words: List[List[str]], values: List[np.ndarray], names: List[str], titles: List[str],
                 suptitle: str, signed: Sequence[bool] = ()) -> Any:
    """One block per row: its title, then one line of coloured words per entry of `values`
    ((rows, tokens) arrays, named by `names`). `signed[k]`: values[k] has a sign (diverging
    red/blue colours, scaled per row by its largest |value|); else shades of orange (0 to the
    row's largest). Defaults: the first is signed when it has negative values."""
    from matplotlib import colormaps

    plt = _pyplot()
    signed = list(signed) or [bool(np.any(np.asarray(v) < 0)) for v in values]
    layouts = [_layout(words) for words in rows_words]
    lines = [1 + max((p[1] for p in lay), default=0) for lay in layouts]
    block = [len(values) * n + 1.2 for n in lines]  # lines of text per row, plus its title
    height = LINE * (sum(block) + 1.5)
    width = CHAR * WRAP + 1.8
    fig = plt.figure(figsize=(width, height))
    fig.suptitle(suptitle, fontsize=9, y=1 - 0.15 / height)
    y = 1.1
    for r, (words, layout) in enumerate(zip(rows_words, layouts)):
        fig.text(0.01, 1 - y * LINE / height, titles[r], fontsize=9, weight="bold", va="top")
        y += 1.0
        for k, (name, row_values) in enumerate(zip(names, values)):
            v = np.asarray(row_values[r], dtype="float64")
            top = float(np.max(np.abs(v))) if v.size else 0.0
            cmap = colormaps["RdBu_r" if signed[k] else "Oranges"]
            for i, line, column in layout:
                share = v[i] / top if top > 0 else 0.0
                colour = cmap(0.5 + 0.5 * share) if signed[k] else cmap(0.9 * max(share, 0.0))
                ink = "white" if abs(share) > 0.6 else "black"
                fig.text((1.6 + CHAR * column) / width, 1 - (y + line * len(names) + k) * LINE / height,
                         words[i], fontsize=8.5, family="monospace", va="top", color=ink,
                         bbox={"boxstyle": "round,pad=0.15", "facecolor": colour, "edgecolor": "none"})
            fig.text(0.01, 1 - (y + k) * LINE / height, name, fontsize=7.5, style="italic", va="top", color="0.35")
        y += len(values) * lines[r] + 0.2
    return fig
