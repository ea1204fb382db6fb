"""Integrated gradients of a model of text, token by token.

Token ids are not a continuous input, so the path of integrated gradients runs through the
model's token vectors instead (Sundararajan et al. 2017, section 6.3; Captum's
LayerIntegratedGradients on the embedding layer): from all-zero vectors (no word) to each
token's looked-up vector, with the position embedding and any other feature columns held as
they are. The model's `tokens` layer (dlrun.models.sequence_layers.TokenEmbedding) takes the
points of the path through its `override` attribute while the gradient is traced. A token's
attribution is the sum over its vector's dimensions; the attributions of a row add up to
f(row) - f(no words) (the completeness check)."""
from __future__ import annotations

import weakref
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.explain.base import Explained, MethodResult

TOKEN_LAYER = "tokens"
_TRACED: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


def token_layer(model: Any) -> Any:
    """The model's TokenEmbedding layer (ValueError: a model without one)."""
    try:
        layer = model.get_layer(TOKEN_LAYER)
    except ValueError:
        layer = None
    if layer is None or not hasattr(layer, "token_vectors"):
        raise ValueError(f"the model has no token layer '{TOKEN_LAYER}' (a model of text built by dlrun)")
    return layer


def token_vectors(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Each row's looked-up token vectors, (rows, tokens, dim), positions not added."""
    return np.asarray(token_layer(model).token_vectors(np.asarray(inputs, dtype="float32")), dtype="float32")


def _vector_gradient_function(model: Any) -> Callable:
    """(rows, token vectors, output index, sign) -> (score, d score / d vectors), traced once per model."""
    fn = _TRACED.get(model)
    if fn is not None:
        return fn
    import tensorflow as tf

    layer = token_layer(model)
    rows_spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    vectors_spec = tf.TensorSpec((None, *layer.compute_output_shape((None, *model.inputs[0].shape[1:]))[1:]),
                                 tf.float32)
    ref = weakref.ref(model)

    @tf.function(input_signature=[rows_spec, vectors_spec, tf.TensorSpec((None,), tf.int32),
                                  tf.TensorSpec((None,), tf.float32)])
    def fn(x: Any, vectors: Any, index: Any, sign: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(vectors)
            layer.override = vectors
            try:
                out = tf.cast(tf.reshape(ref()(x, training=False), (tf.shape(x)[0], -1)), tf.float32)
            finally:
                layer.override = None
            score = tf.gather(out, index, batch_dims=1) * sign
        return score, tape.gradient(score, vectors)

    _TRACED[model] = fn
    return fn


def token_scores(model: Any, inputs: np.ndarray, vectors: np.ndarray, targets: Optional[np.ndarray]) -> np.ndarray:
    """Each row's target score with its token vectors replaced by `vectors`."""
    from dlrun.explain.gradients import _index_sign

    x = np.asarray(inputs, dtype="float32")
    index, sign = _index_sign(model, targets, len(x))
    return np.asarray(_vector_gradient_function(model)(x, np.asarray(vectors, "float32"), index, sign)[0], "float64")


def token_attributions(model: Any, inputs: np.ndarray, targets: Optional[np.ndarray] = None,
                       n_steps: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """(attributions (rows, tokens), completeness error per row) of integrated gradients from
    all-zero token vectors; padding gets exactly 0 (its vector is not on any path)."""
    from dlrun.explain.gradients import _index_sign, path_integral

    x = np.asarray(inputs, dtype="float32")
    vectors = token_vectors(model, x)
    base = np.zeros_like(vectors)
    index, sign = _index_sign(model, targets, len(x))
    fn = _vector_gradient_function(model)
    per_dim = path_integral(vectors, base, lambda path, rows: fn(x[rows], path, index[rows], sign[rows])[1], n_steps)
    attributions = per_dim.sum(axis=2)
    layout = model_layout_mask(model, x)
    attributions = np.where(layout, attributions, 0.0)
    delta = token_scores(model, x, vectors, targets) - token_scores(model, x, base, targets)
    errors = np.abs(attributions.sum(axis=1) - delta) / np.maximum(np.abs(delta), 1e-12)
    return attributions, errors


def model_layout_mask(model: Any, inputs: np.ndarray) -> np.ndarray:
    """(rows, tokens): True where a row has a token (not padding)."""
    layer = token_layer(model)
    ids = np.asarray(inputs)[:, layer.offset:layer.offset + layer.length]
    return ids != 0


def row_tokens(model: Explained, x: np.ndarray) -> List[List[str]]:
    """Each row's tokens as words, one per position (padding: '')."""
    return [model.text.words(row) for row in x]


def integrated_gradients(model: Explained, options: ExplainConfig) -> MethodResult:
    """Integrated gradients of the explained rows' tokens, steps doubled until complete within 1%:
    integrated_gradients.png (each row's words coloured by attribution), integrated_gradients.csv
    (per row, with the completeness check) and integrated_gradients_tokens.csv (per token)."""
    from dlrun.explain import text_plots
    from dlrun.explain.gradients import IG_GOAL, IG_MAX_STEPS, _percent, _rows

    x, targets, outputs, titles = _rows(model)
    steps = options.ig_steps
    while True:
        attributions, errors = token_attributions(model.model, x, targets, steps)
        if errors.max() < IG_GOAL or steps >= IG_MAX_STEPS:
            break
        steps = min(2 * steps, IG_MAX_STEPS)
    worst = float(errors.max())
    passed = worst < IG_GOAL
    words = row_tokens(model, x)
    predicted = model.predicted(outputs)
    target_class = [""] * len(x) if model.task == "regression" else [model.label(t) for t in targets]
    table = pd.DataFrame({
        "test_row": model.rows, "data_row": [int(model.data_rows[r]) for r in model.rows],
        "true": [model.label(model.y_test[r]) for r in model.rows],
        "predicted": [model.label(p) for p in predicted], "target_class": target_class,
        "attribution_sum": attributions.sum(axis=1), "completeness_error": errors, "steps": steps})
    tokens = token_table(model.rows, words, {"attribution": attributions})
    figure = text_plots.token_figure(
        words, [attributions], ["integrated gradients"], titles,
        f"integrated gradients ({steps} steps) from all-zero token vectors (no words)\n"
        "red: for the predicted class, blue: against it")
    check = (f"max error {_percent(worst)} of f(text) - f(no words) over {len(x)} rows with {steps} steps "
             f"(goal < 1%{'' if passed else ': not met'})")
    lines = [_row_line(row, title, w, a) for row, title, w, a in zip(model.rows, titles, words, attributions)]
    return MethodResult(tables={"integrated_gradients.csv": table, "integrated_gradients_tokens.csv": tokens},
                        figures={"integrated_gradients.png": figure},
                        checks={"integrated gradients completeness": check}, passed=passed, lines=lines)


def token_table(rows: List[int], words: List[List[str]], values: dict) -> pd.DataFrame:
    """One line per explained row and token (padding left out): test_row, position, token, values..."""
    records = []
    for i, (row, tokens) in enumerate(zip(rows, words)):
        for position, token in enumerate(tokens):
            if token:
                records.append({"test_row": row, "position": position, "token": token,
                                **{name: float(v[i][position]) for name, v in values.items()}})
    return pd.DataFrame(records, columns=["test_row", "position", "token", *values])


def _row_line(row: int, title: str, words: List[str], attributions: np.ndarray, top: int = 3) -> str:
    """'test row 3: true negative, predicted negative: for: not (+0.41), ...; against: ...'"""
    present = [(w, float(a)) for w, a in zip(words, attributions) if w]
    pushing = sorted((p for p in present if p[1] > 0), key=lambda p: -p[1])[:top]
    against = sorted((p for p in present if p[1] < 0), key=lambda p: p[1])[:top]

    def said(pairs: List[Tuple[str, float]]) -> str:
        return ", ".join(f"'{w}' ({a:+.3g})" for w, a in pairs) or "none"

    return f"{title}: for: {said(pushing)}; against: {said(against)}"
