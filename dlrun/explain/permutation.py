"""Permutation importance of each source column: how much the run's own metric worsens on
the test rows when that column (as the user's file has it) is shuffled. sklearn computes
it; the model is called through `Explained.outputs` (model.predict would be ~100x slower)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.explain.base import Explained, MethodResult


class _SourceModel:
    """The run's model as an sklearn estimator on rows as read: transform, then outputs.
    Only what permutation_importance and our scorer use (fit is never called)."""

    def __init__(self, model: Explained) -> None:
        self.model = model

    def fit(self, x: Any, y: Any = None) -> "_SourceModel":
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.outputs(self.model.transform(frame))


def metric_units(model: Explained) -> str:
    """The metric's units in the user's terms ('' for unitless ones: accuracy, auc, r2)."""
    if model.task != "regression":
        return ""
    return {"mae": f"target '{model.target}', its units", "rmse": f"target '{model.target}', its units",
            "mse": f"target '{model.target}' units squared", "mape": "percentage points"}.get(model.metric.name, "")


def permutation_importance(model: Explained, options: ExplainConfig) -> MethodResult:
    """sklearn's permutation importance over the source columns of (at most options.max_rows)
    test rows, scored with the run's metric signed so that greater is better; importance is
    the metric's drop (or rise, for errors) in its own units. Table, bar chart and lines."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    from dlrun.explain.tabular_plots import permutation_figure

    if model.source_test is None or model.transform is None:
        raise ValueError("permutation importance needs the test rows as read (a model of table rows)")
    frame, y = model.source_test, np.asarray(model.y_test)
    if len(frame) > options.max_rows:
        keep = np.sort(np.random.default_rng(options.seed).choice(len(frame), options.max_rows, replace=False))
        frame, y = frame.iloc[keep], y[keep]
    metric = model.metric
    sign = 1.0 if metric.greater_is_better else -1.0

    def scoring(estimator: _SourceModel, x: pd.DataFrame, y_true: np.ndarray) -> float:
        return sign * float(model.score(y_true, estimator.predict(x)))

    def log_loss(estimator: _SourceModel, x: pd.DataFrame, y_true: np.ndarray) -> float:
        """Minus the cross-entropy in nats: it moves with every probability, where accuracy on a
        few hundred rows moves by whole rows (correlated features make most of those ties)."""
        p = np.clip(estimator.predict(x)[np.arange(len(y_true)), np.asarray(y_true, dtype=int)], 1e-7, 1.0)
        return float(np.mean(np.log(p)))

    estimator = _SourceModel(model)
    baseline = sign * scoring(estimator, frame, y)
    scorers = {"metric": scoring}
    if model.task != "regression" and model.output == "probability":
        scorers["loss"] = log_loss
    found = sk_permutation_importance(estimator, frame, y, scoring=scorers, n_repeats=options.repeats,
                                      random_state=options.seed)
    table = pd.DataFrame({"feature": [str(c) for c in frame.columns],
                          "importance_mean": _exact(found["metric"].importances_mean),
                          "importance_std": _exact(found["metric"].importances_std)})
    if "loss" in found:  # the same shuffles, scored by the log loss too
        table["log_loss_increase_mean"] = _exact(found["loss"].importances_mean)
        table["log_loss_increase_std"] = _exact(found["loss"].importances_std)
    table = table.sort_values([c for c in ("importance_mean", "log_loss_increase_mean") if c in table],
                              ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    change = "drop" if metric.greater_is_better else "increase"
    units = metric_units(model)
    xlabel = f"{change} in test {metric.name}" + (f" ({units})" if units else "")
    title = f"Permutation importance: test {metric.name} {baseline:.4g}, {options.repeats} shuffles per column"
    lines = _lines(table, metric.name, metric.greater_is_better, baseline, len(frame), options.repeats, units)
    if "loss" in found:  # ranks (summary, agreement with SHAP) by the loss: accuracy-like metrics tie
        ranked = table.sort_values("log_loss_increase_mean", ascending=False, kind="stable")
        importance = pd.Series(ranked["log_loss_increase_mean"].to_numpy(), index=ranked["feature"],
                               name="permutation: log loss rise")
        still = int((table["importance_mean"] == 0).sum())
        if still:
            lines.append(f"{still} of {len(table)} columns leave test {metric.name} unchanged when shuffled alone "
                         "(columns that stand in for each other each look unimportant); ranked by the rise in "
                         f"log loss over the same shuffles: {', '.join(repr(f) for f in importance.index[:3])}")
    else:
        importance = pd.Series(table["importance_mean"].to_numpy(), index=table["feature"],
                               name=f"permutation: {metric.name} {change}")
    return MethodResult(
        tables={"permutation_importance.csv": table},
        figures={"permutation_importance.png": permutation_figure(table, xlabel, options.top, title)},
        importance=importance, lines=lines)


def _exact(values: np.ndarray) -> np.ndarray:
    """Differences of equal scores come out as +-2e-17: they are 0."""
    values = np.asarray(values, dtype="float64")
    return np.where(np.abs(values) < 1e-12, 0.0, values)


def _lines(table: pd.DataFrame, metric: str, greater: bool, baseline: float, rows: int, repeats: int,
           units: str) -> list:
    head = table.dropna(subset=["importance_mean"]).head(3)
    setting = f"test {metric} {baseline:.4g} on {rows} rows, each column shuffled {repeats} times"
    if head.empty or not np.any(np.abs(head["importance_mean"].to_numpy()) > 0):
        return [f"shuffling any single column leaves test {metric} unchanged ({setting})"]
    verb = "costs" if greater else "adds"
    pairs = list(zip(head["feature"], head["importance_mean"]))
    parts = [f"shuffling '{pairs[0][0]}' {verb} {pairs[0][1]:.3g} {metric}"] + [f"'{f}' {v:.3g}" for f, v in pairs[1:]]
    return [", ".join(parts) + (f" ({units})" if units else ""), setting]
