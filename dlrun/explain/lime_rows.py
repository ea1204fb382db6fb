"""LIME explanations of single test rows (`Explained.rows`) in the user's own units: LIME
samples rows as the user's file has them (numbers as they are, categories by name), and
each sample goes through the run's preprocessing and model. Conditions read "age > 41.00"
or "city=Paris"; weights are in the explained output's units (probability, target units)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.explain.base import Explained, MethodResult

TRAIN_ROWS = 10_000  # training rows LIME takes its sampling statistics from (a seeded subset beyond that)
SHOWN = 3            # conditions named per row in the summary lines
MISSING = "(missing)"


@dataclass
class _Coded:
    """Source rows as LIME's numeric matrix: text, category and bool columns as integer
    codes (LIME's categorical features), numbers as they are."""
    columns: List[Any]                 # the source frame's columns, in order
    values: Dict[int, np.ndarray]      # coded column position -> the original value of each code

    def encode(self, frame: pd.DataFrame, medians: np.ndarray) -> np.ndarray:
        """The frame as numbers; missing numbers become the training median: LIME's
        statistics need numbers, and the model's imputer fills the same median."""
        out = np.empty((len(frame), len(self.columns)))
        for j, column in enumerate(self.columns):
            series = frame[column]
            if j in self.values:
                code = {_name(v): i for i, v in enumerate(self.values[j])}
                out[:, j] = [code[_name(v)] for v in series]
            else:
                numbers = series.to_numpy(dtype="float64", na_value=np.nan)
                out[:, j] = np.where(np.isnan(numbers), medians[j], numbers)
        return out

    def decode(self, array: np.ndarray) -> pd.DataFrame:
        """LIME's samples back into a frame as the user's file has it."""
        data = {}
        for j, column in enumerate(self.columns):
            if j in self.values:
                codes = np.clip(np.rint(array[:, j]).astype(int), 0, len(self.values[j]) - 1)
                data[column] = self.values[j][codes]
            else:
                data[column] = array[:, j]
        return pd.DataFrame(data, columns=self.columns)


def _name(value: Any) -> str:
    return MISSING if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _coded(train: pd.DataFrame, rows: pd.DataFrame) -> _Coded:
    values = {}
    for j, column in enumerate(train.columns):
        series = train[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            continue
        seen: Dict[str, Any] = {}
        for v in pd.concat([series, rows[column]]).tolist():  # the explained rows' values too, if unseen
            seen.setdefault(_name(v), v)
        order = sorted(seen)
        values[j] = np.array([seen[n] for n in order], dtype=object)
    return _Coded(list(train.columns), values)


def lime_explanations(model: Explained, options: ExplainConfig) -> MethodResult:
    """A LIME explanation of each row in `model.rows`, for the class the model predicts
    (LIME explains label 1 unless told) or the predicted value: lime.csv, a bar chart per
    row and a line per row naming its strongest conditions."""
    from lime.lime_tabular import LimeTabularExplainer

    from dlrun.explain.tabular_plots import lime_figure

    if model.source_train is None or model.source_test is None or model.transform is None:
        raise ValueError("LIME needs the rows as read (a model of table rows)")
    columns = ["test_row", "data_row", "true", "predicted", "explained_class", "condition", "weight"]
    if not model.rows:
        return MethodResult(tables={"lime.csv": pd.DataFrame(columns=columns)})
    train = model.source_train
    if len(train) > TRAIN_ROWS:
        train = train.iloc[np.sort(np.random.default_rng(options.seed).choice(len(train), TRAIN_ROWS, replace=False))]
    rows = model.source_test.iloc[list(model.rows)]
    coded = _coded(train, rows)
    medians = np.array([np.nanmedian(train[c].to_numpy(dtype="float64", na_value=np.nan))
                        if j not in coded.values and train[c].notna().any() else 0.0
                        for j, c in enumerate(coded.columns)])
    regression = model.task == "regression"
    explainer = LimeTabularExplainer(
        coded.encode(train, medians), mode="regression" if regression else "classification",
        feature_names=[str(c) for c in coded.columns], categorical_features=sorted(coded.values),
        categorical_names={j: [_name(v) for v in vals] for j, vals in coded.values.items()},
        class_names=None if regression else model.classes, discretize_continuous=True, random_state=options.seed)

    def predict(array: np.ndarray) -> np.ndarray:
        return model.outputs(model.transform(coded.decode(array)))

    found, figures, lines, fits = [], {}, [], []
    outputs = model.outputs(model.x_test[list(model.rows)])
    predicted = model.predicted(outputs)
    for k, (row, data) in enumerate(zip(model.rows, coded.encode(rows, medians))):
        label = None if regression else int(predicted[k])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*do(es)? not sum to 1")  # a hinge model's margins
            exp = explainer.explain_instance(data, predict, **({} if regression else {"labels": (label,)}),
                                             num_features=options.lime_features, num_samples=options.lime_samples)
        # the predicted class, named outright: LIME's default is label 1, and top_labels=1
        # would take the largest output, not the class the run's threshold predicts
        pairs = exp.as_list() if regression else exp.as_list(label=label)
        fits.append(float(exp.score))
        found.extend(_table_rows(model, row, predicted[k], pairs))
        title, xlabel, heading = _describe(model, row, outputs[k], predicted[k])
        figures[f"lime_row{row}.png"] = lime_figure([c for c, _ in pairs], [w for _, w in pairs], title, xlabel,
                                                    alert=_wrong(model, row, predicted[k]))
        lines.append(f"{heading}: " + ", ".join(f"'{c}' {w:+.3g}" for c, w in pairs[:SHOWN]))
    table = pd.DataFrame(found, columns=columns)
    fit = ", ".join(f"row {r}: {score:.2f}" for r, score in zip(model.rows, fits))
    checks = {"lime local fit": f"R² of LIME's local linear model (how well it mimics the model near the row): {fit}"}
    return MethodResult(tables={"lime.csv": table}, figures=figures, checks=checks, lines=lines)


def _table_rows(model: Explained, row: int, predicted: Any, pairs: list) -> list:
    explained = model.target if model.task == "regression" else model.label(predicted)
    true, said = model.label(model.y_test[row]), model.label(predicted)
    return [(row, int(model.data_rows[row]), true, said, explained, c, float(w)) for c, w in pairs]


def _wrong(model: Explained, row: int, predicted: Any) -> bool:
    return model.task != "regression" and int(predicted) != int(model.y_test[row])


def _describe(model: Explained, row: int, outputs: np.ndarray, predicted: Any) -> tuple:
    """(figure title, x label, the summary line's opening) for one row."""
    true, said = model.label(model.y_test[row]), model.label(predicted)
    where = f"test row {row} (data row {int(model.data_rows[row])})"
    if model.task == "regression":
        off = f"off by {abs(float(predicted) - float(model.y_test[row])):.4g}"
        return (f"{where}: true {true}, predicted {said}", f"LIME weight ({model.target} units)",
                f"test row {row} (true {true}, predicted {said}, {off})")
    score = float(outputs[int(predicted)])
    margin = model.task == "binary" and model.output == "margin"
    value = f"margin {score:.3g}" if margin else f"P={score:.2f}"
    wrong = ", MISCLASSIFIED" if _wrong(model, row, predicted) else ""
    xlabel = f"LIME weight on the margin toward '{said}'" if margin else f"LIME weight on P({said})"
    return (f"{where}: true {true}, predicted {said} ({value}){wrong}", xlabel,
            f"test row {row} (true {true}, predicted {said}{', misclassified' if wrong else ''})")

