"""The run's metrics in NumPy, from the model's outputs: what permutation importance
scores with (Keras metrics cost a graph call each; these cost microseconds)."""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from dlrun.explain.base import Metric

# (y_true, outputs, predicted) -> value. outputs: Explained.outputs (probabilities per class,
# or target values); predicted: class codes (after the run's threshold) or target values.
Score = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def _top3(y: np.ndarray, out: np.ndarray, pred: np.ndarray) -> float:
    top = np.argsort(-out, axis=1)[:, :3]
    return float(np.mean((top == np.asarray(y).reshape(-1, 1)).any(axis=1)))


def _sk(name: str, on_scores: bool = False) -> Score:
    def score(y: np.ndarray, out: np.ndarray, pred: np.ndarray) -> float:
        import sklearn.metrics as skm

        fn = getattr(skm, name)
        if on_scores:
            return float(fn(y, out[:, 1])) if len(np.unique(y)) > 1 else float("nan")
        return float(fn(y, pred, zero_division=0)) if name != "accuracy_score" else float(fn(y, pred))
    return score


def _r2(y: np.ndarray, out: np.ndarray, pred: np.ndarray) -> float:
    total = float(np.sum((y - np.mean(y)) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / total if total > 0 else float("nan")


SCORES: Dict[str, Tuple[Score, bool]] = {  # name -> (score, greater is better); names as trainer.metrics
    "accuracy": (lambda y, out, pred: float(np.mean(np.asarray(y) == pred)), True),
    "top3_accuracy": (_top3, True),
    "auc": (_sk("roc_auc_score", on_scores=True), True),
    "pr_auc": (_sk("average_precision_score", on_scores=True), True),
    "precision": (_sk("precision_score"), True),
    "recall": (_sk("recall_score"), True),
    "f1": (_sk("f1_score"), True),
    "mae": (lambda y, out, pred: float(np.mean(np.abs(y - pred))), False),
    "mse": (lambda y, out, pred: float(np.mean((y - pred) ** 2)), False),
    "rmse": (lambda y, out, pred: float(np.sqrt(np.mean((y - pred) ** 2))), False),
    "mape": (lambda y, out, pred: float(100.0 * np.mean(np.abs((y - pred) / np.where(y == 0, 1e-7, y)))), False),
    "r2": (_r2, True),
}


def metric(name: str) -> Metric:
    score, greater = SCORES[name]
    return Metric(name, score, greater)
