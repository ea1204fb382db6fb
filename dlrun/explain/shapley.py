"""SHAP values of a model of table rows (shap.GradientExplainer: expected gradients over
training rows), summed per source column, in the output's own units: probability for
classes, target units for regression. Named shapley.py so that `import shap` finds the package."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.explain.base import Explained, MethodResult, keras_list_input_quiet, numpy_global_rng

NSAMPLES = 200  # expected-gradient samples per row and class (digits: additivity within ~5% of |output - base|)
ALL_CLASSES = 10  # up to this many classes every class is explained (digits, 200 rows: ~4 s); more:
#                   each row's predicted class only (~0.6 s, ranked_outputs), cost grows with classes
TOLERANCE = 0.25  # additivity check fails when the mean gap exceeds this share of the mean |output - base|


def shap_values(model: Explained, options: ExplainConfig) -> MethodResult:
    """SHAP of options.shap_rows test rows against options.background training rows (both
    seeded subsets). Never DeepExplainer: wrong on softmax under Keras 3, and a failure
    leaves TensorFlow's gradients patched for the rest of the process."""
    from dlrun.explain.tabular_plots import shap_summary_figure

    rng = np.random.default_rng(options.seed)
    background = model.x_train[np.sort(rng.choice(len(model.x_train), min(options.background, len(model.x_train)),
                                                  replace=False))]
    rows = np.sort(rng.choice(len(model.x_test), min(options.shap_rows, len(model.x_test)), replace=False))
    x = model.x_test[rows]
    outputs = model.outputs(x)
    base_all = model.outputs(background).mean(axis=0)
    phi, index, explained = _explain(model, background, x, outputs, options.seed)
    if model.task == "regression":
        base, output = np.full(len(rows), float(base_all)), outputs
    else:
        base, output = base_all[explained], outputs[np.arange(len(rows)), explained]
    mine = phi[np.arange(len(rows)), :, index]  # each row's explained class: (rows, inputs)
    columns = model.columns
    sums = np.stack([phi[:, model.groups[c]].sum(axis=1) for c in columns], axis=1)  # additivity: sums are SHAP
    by_column = sums[np.arange(len(rows)), :, index]

    every = model.task != "regression" and phi.shape[2] == len(model.classes)
    labels = [model.classes[-1]] if model.task == "binary" else model.classes if every else []
    table = _importance(columns, by_column, sums, labels)
    values = pd.DataFrame({"test_row": rows, "data_row": np.asarray(model.data_rows)[rows],
                           "class": [model.target if model.task == "regression" else model.classes[c] for c in explained],
                           "base_value": base, "output": output})
    values = pd.concat([values, pd.DataFrame(by_column, columns=columns)], axis=1)
    tables = {"shap_importance.csv": table, "shap_values.csv": values}
    if any(len(g) > 1 for g in model.groups.values()):
        owner = {i: c for c, g in model.groups.items() for i in g}
        tables["shap_importance_encoded.csv"] = _importance(
            list(model.feature_names), mine, phi, labels, [owner.get(i, "") for i in range(len(model.feature_names))])

    gap = np.abs(base + mine.sum(axis=1) - output)
    spread = float(np.mean(np.abs(output - base)))
    passed = float(gap.mean()) <= TOLERANCE * spread or float(gap.mean()) < 1e-4 * (1.0 + float(np.mean(np.abs(base))))
    check = (f"base + sum of SHAP is within {gap.mean():.3g} of the output on average (max {gap.max():.3g}; "
             f"the outputs lie {spread:.3g} from the base on average; GradientExplainer samples expected "
             f"gradients ({NSAMPLES} per row), an approximation)")
    title, xlabel = _what(model)
    figure = shap_summary_figure(by_column, _as_read(model, rows), columns, base, options.top, title, xlabel)
    importance = pd.Series(table["mean_abs_shap"].to_numpy(), index=table["feature"], name=f"mean |SHAP| ({xlabel})")
    top = ", ".join(f"'{f}' {v:.3g}" for f, v in importance.head(3).items())
    return MethodResult(tables=tables, figures={"shap_summary.png": figure}, importance=importance,
                        checks={"shap additivity": check}, passed=passed,
                        lines=[f"mean |SHAP| ({xlabel}) over {len(rows)} test rows: {top}"])


def _explain(model: Explained, background: np.ndarray, x: np.ndarray, outputs: np.ndarray,
             seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SHAP per row, input and output explained (rows, inputs, outputs) in `outputs` units,
    per row the index of its explained class on the last axis, and that class's code).
    Binary: the raw Keras output is P(classes[1]) (or a margin), the class-1 column of
    `outputs`; class 0's SHAP would be its negative (same magnitudes), so every row is
    explained for classes[1] and the beeswarm's sign means one direction throughout.
    Multiclass: each row's predicted class; every class too when there are few (ALL_CLASSES).
    Regression: the single output, already in target units (the last layer un-scales)."""
    import shap
    import tensorflow as tf

    explainer = shap.GradientExplainer(model.model, background.reshape(-1, *model.input_shape), batch_size=NSAMPLES)
    multiclass = model.task == "multiclass"
    every = not multiclass or len(model.classes) <= ALL_CLASSES
    predicted = (model.predicted(outputs) if multiclass else
                 np.full(len(x), 1 if model.task == "binary" else 0, dtype=int))
    ranked = {} if every else {"ranked_outputs": predicted.reshape(-1, 1), "output_rank_order": "custom"}
    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # one traced gradient per class reads as "retracing" to TensorFlow
    try:
        with numpy_global_rng(), keras_list_input_quiet():  # shap seeds NumPy's global generator
            found = explainer.shap_values(x.reshape(-1, *model.input_shape), nsamples=NSAMPLES, rseed=seed, **ranked)
    finally:
        tf.get_logger().setLevel(level)
    found = np.asarray(found[0] if isinstance(found, tuple) else found, dtype="float64")
    phi = found.reshape(len(x), -1, found.shape[-1])  # rows, inputs, outputs explained
    if model.task == "binary":  # one output, P(classes[1]): [class 0, class 1] = [-phi, phi]
        return np.concatenate([-phi, phi], axis=2), predicted, predicted
    if not every:  # the one ranked output is each row's predicted class
        return phi, np.zeros(len(x), dtype=int), predicted
    return phi, predicted, predicted  # regression: predicted is 0, the single output


def _importance(features: List[str], phi: np.ndarray, per_class: np.ndarray, labels: List[str],
                column: Optional[List[str]] = None) -> pd.DataFrame:
    """mean |SHAP| per feature of each row's explained class (`phi`: rows x features), and
    per class in `labels` (binary: the positive one) from `per_class` (rows x features x classes)."""
    table = pd.DataFrame({"feature": features})
    if column is not None:
        table["column"] = column
    table["mean_abs_shap"] = np.abs(phi).mean(axis=0)
    offset = per_class.shape[2] - len(labels)  # binary: the last of [class 0, class 1]
    for k, label in enumerate(labels):
        table[f"mean_abs_shap_{label}"] = np.abs(per_class[:, :, offset + k]).mean(axis=0)
    return table.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def _what(model: Explained) -> Tuple[str, str]:
    """(figure title, the values' units) for what was explained."""
    if model.task == "regression":
        return f"SHAP in units of {model.target}", f"{model.target} units"
    if model.task == "binary":
        of = f"the margin toward '{model.classes[1]}'" if model.output == "margin" else f"P({model.classes[1]})"
        return f"SHAP of {of}, every row", "margin" if model.output == "margin" else "probability"
    return "SHAP of P(class) for each row's predicted class", "probability"


def _as_read(model: Explained, rows: np.ndarray) -> np.ndarray:
    """The explained rows' feature values as read, one column per source column, for the
    beeswarm's colors: numbers as they are, NaN for text (it has no numeric value)."""
    frame = model.source_test.iloc[rows] if model.source_test is not None else None
    found = {str(c): c for c in frame.columns} if frame is not None else {}
    data = np.full((len(rows), len(model.columns)), np.nan)
    for j, column in enumerate(model.columns):
        series = frame[found[column]] if column in found else None
        if series is not None and (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            data[:, j] = series.to_numpy(dtype="float64", na_value=np.nan)
    return data
