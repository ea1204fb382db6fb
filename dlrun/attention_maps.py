"""Attention maps of a model=attention run: which tokens each token attends to, head by
head. Computing (`attention_scores`: a sub-model that hands out an attention layer's
weights, in the saved graph since the layers are called with return_attention_scores=True)
is separate from drawing (`attention_figure`); `write_attention_maps` writes attention.png
for the first test examples of a run. TensorFlow/Keras are imported inside functions only."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

MAX_TOKENS = 24   # tokens shown per heatmap axis (a long text: its first MAX_TOKENS tokens)
MAX_WORDS = 80    # words of a text shown in the input panel


def attention_layers(model: Any) -> List[str]:
    """Names of the model's MultiHeadAttention layers, first to last."""
    import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)]


def attention_scores(model: Any, x: Any, layer: Optional[str] = None) -> np.ndarray:
    """Attention weights of `layer` (default: the last attention layer) for the rows `x`:
    shape (examples, heads, query tokens, key tokens); each query's row sums to 1 over the
    keys it may see (padding gets 0)."""
    import keras

    names = attention_layers(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no MultiHeadAttention layer")
    name = names[-1] if layer is None else layer
    if name not in names:
        raise ValueError(f"no attention layer {name!r}; the model has {', '.join(names)}")
    output = model.get_layer(name).output
    if not isinstance(output, (list, tuple)) or len(output) < 2:
        raise ValueError(f"layer {name!r} was not called with return_attention_scores=True")
    sub = keras.Model(model.inputs[0], output[1])  # one input, not a list of one: Keras warns at each call
    return np.asarray(sub(np.asarray(x, dtype="float32"), training=False))  # not predict_on_batch: it
    # duplicates rows under a mirrored strategy


def kept_tokens(text: Any, row: np.ndarray, tokens: int) -> np.ndarray:
    """Positions of the tokens to show: a text's non-padding tokens, or every image token."""
    if text is None:
        return np.arange(tokens)
    return np.flatnonzero([bool(w) for w in text.words(row)[:tokens]])


def token_labels(text: Any, row: np.ndarray, tokens: int, patch_size: Optional[Sequence[int]] = None) -> List[str]:
    """Labels of the kept tokens (see kept_tokens): a text's words (padding left out), an
    image's "row 1".. (one token per row) or "patch (r,c)" (1-based, row by row)."""
    if text is not None:
        return [w for w in text.words(row)[:tokens] if w]
    if patch_size is None:
        return [f"row {i + 1}" for i in range(tokens)]
    width = np.asarray(row).shape[1]
    columns = max(1, width // int(patch_size[1]))
    return [f"patch ({i // columns + 1},{i % columns + 1})" for i in range(tokens)]


def received(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(examples, tokens): the weight each token receives, from a layer's (examples, heads,
    queries, keys) weights averaged over heads and over each example's real (`mask`) queries;
    padding gets 0."""
    mean = np.asarray(scores, dtype="float64").mean(axis=1)          # (examples, queries, keys)
    mask = np.asarray(mask, dtype=bool)
    weights = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)   # over real queries
    return np.where(mask, np.einsum("nq,nqk->nk", weights, mean), 0.0)


def attention_figure(scores: np.ndarray, inputs: np.ndarray, text: Any = None, titles: Sequence[str] = (),
                     patch_size: Optional[Sequence[int]] = None, layer: str = "", max_tokens: int = MAX_TOKENS) -> Any:
    """One figure row per example: the input (a text's words, or the image) and the attention
    each token receives (mean over heads and queries), then one heatmap per head (query
    tokens down, key tokens across, padding trimmed, at most `max_tokens` of each).
    `scores`: (examples, heads, T, T); `inputs`: the same examples' rows (text) or images."""
    plt = _pyplot()
    examples, heads, tokens = scores.shape[0], scores.shape[1], scores.shape[2]
    cols = heads + 2
    fig, axes = plt.subplots(examples, cols, figsize=(2.9 * cols, 3.0 * examples + 0.6), squeeze=False)
    for e in range(examples):
        row = np.asarray(inputs[e])
        kept = kept_tokens(text, row, tokens)
        labels = token_labels(text, row, tokens, patch_size)
        real = np.zeros(tokens, dtype=bool)
        real[kept] = True
        weights = received(scores[e][None], real[None])[0][kept]
        shown = kept[:max_tokens]
        cut = f" (first {max_tokens} of {kept.size} tokens)" if kept.size > max_tokens else ""
        title = titles[e] if e < len(titles) else ""
        if text is not None:
            _text_panel(axes[e, 0], labels, title)
            _bars(axes[e, 1], weights[:max_tokens], labels[:max_tokens], "attention received" + cut)
        else:
            _image_panel(axes[e, 0], row, title)
            if patch_size is None:
                _bars(axes[e, 1], weights, labels, "attention received")
            else:
                grid = (row.shape[0] // int(patch_size[0]), row.shape[1] // int(patch_size[1]))
                _grid_panel(axes[e, 1], weights.reshape(grid), "attention received")
        for h in range(heads):
            ax = axes[e, h + 2]
            matrix = scores[e, h][np.ix_(shown, shown)]
            ax.imshow(matrix, cmap="viridis", vmin=0.0, aspect="auto", interpolation="nearest")
            _tick_labels(ax, labels[:len(shown)])
            ax.set_title(f"head {h + 1}" + (cut if h == 0 else ""), fontsize=9)
            if h == 0:
                ax.set_ylabel("query token", fontsize=8)
            ax.set_xlabel("key token", fontsize=8)
    fig.suptitle(f"attention weights{' of ' + layer if layer else ''}: each query token's weights over the key "
                 f"tokens (rows sum to 1), head by head", fontsize=10)
    fig.tight_layout()
    return fig


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _text_panel(ax: Any, words: List[str], title: str) -> None:
    shown = " ".join(words[:MAX_WORDS]) + (" ..." if len(words) > MAX_WORDS else "")
    ax.text(0.0, 1.0, "\n".join(textwrap.wrap(shown or "(no tokens)", width=34)), va="top", ha="left", fontsize=8,
            transform=ax.transAxes)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _image_panel(ax: Any, image: np.ndarray, title: str) -> None:
    image = np.asarray(image, dtype="float64")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:  # scaled otherwise than [0, 1]: stretch for display only
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image[..., :3], interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Any, weights: np.ndarray, labels: List[str], title: str) -> None:
    positions = np.arange(len(weights))
    ax.barh(positions, weights, color="tab:orange")
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()  # first token on top, as the heatmaps and the image
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)


def _grid_panel(ax: Any, grid: np.ndarray, title: str) -> None:
    ax.imshow(grid, cmap="viridis", vmin=0.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _tick_labels(ax: Any, labels: List[str]) -> None:
    size = 7 if len(labels) <= 12 else 5
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=size)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=size)


def example_titles(meta: Any, y_true: Sequence[Any], outputs: np.ndarray,
                   threshold: Optional[float] = None) -> List[str]:
    """'true: X, predicted: Y' per example, in the user's class names (regression: values)."""
    outputs = np.asarray(outputs)
    classes = list(getattr(meta, "classes", []) or [])
    titles = []

    def name(code: int) -> str:
        return str(classes[code]) if 0 <= code < len(classes) else str(code)

    for y, out in zip(y_true, outputs):
        out = np.ravel(out)
        if meta.task == "regression":
            titles.append(f"true: {float(y):.4g}, predicted: {float(out[0]):.4g}")
            continue
        if meta.task == "binary" and out.size == 1:
            code = int(out[0] >= (0.5 if threshold is None else threshold))
        else:
            code = int(np.argmax(out))
        titles.append(f"true: {name(int(y))}, predicted: {name(code)}")
    return titles


def write_attention_maps(run: Any, model: Any, bundle: Any, run_dir: Path, examples: int = 4,
                         threshold: Optional[float] = None) -> Optional[Path]:
    """attention.png in `run_dir`: the last attention layer's weights for the first `examples`
    test rows. Does nothing (returns None) for a model without attention or no test rows."""
    if run.model.name != "attention" or not attention_layers(model):
        return None
    x = bundle.x_test
    count = min(examples, len(x))
    if count == 0:
        return None
    from dlrun.training import scores_of

    rows = np.asarray(x[:count], dtype="float32")  # an image folder's ImageFiles reads these images
    layer = attention_layers(model)[-1]
    scores = attention_scores(model, rows, layer)
    titles = example_titles(bundle.meta, np.asarray(bundle.y_test[:count]), scores_of(model, rows), threshold)
    names = {lay.name for lay in model.layers}
    patch = getattr(model.get_layer("tokens"), "patch_size", None) if "tokens" in names else None
    fig = attention_figure(scores, rows, text=bundle.meta.text, titles=titles, patch_size=patch, layer=layer)
    from dlrun.results.rundir import atomic_path

    path = Path(run_dir) / "attention.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _pyplot().close(fig)
    return path


__all__ = ["attention_layers", "attention_scores", "token_labels", "attention_figure", "write_attention_maps",
           "example_titles", "kept_tokens"]
