"""Classification helpers that are statistics, not training: class weights,
the decision threshold of a binary model, the scores it gives, and the baseline
a model must beat. Pure functions of arrays (scikit-learn, no TensorFlow)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from dlrun.errors import ConfigError, closest


def class_weight_codes(weights: Mapping[Any, float], classes: List[Any]) -> Dict[int, float]:
    """{label: weight} as written by the user -> {label code: weight}. Labels are
    matched as text (a YAML key 1 matches the class 1); a class left out weighs 1."""
    by_text = {str(label): code for code, label in enumerate(classes)}
    out = {code: 1.0 for code in range(len(classes))}
    for label, weight in weights.items():
        code = by_text.get(str(label))
        if code is None:
            hint = closest(str(label), by_text)
            raise ConfigError(f"trainer.class_weight.{label}", weight, "no such class; the classes are "
                              + ", ".join(by_text) + (f" (did you mean '{hint}'?)" if hint else ""))
        out[code] = float(weight)
    return out


def class_weights(setting: Any, classes: List[Any], y_train: np.ndarray) -> Optional[Dict[int, float]]:
    """trainer.class_weight as {label code: weight}, or None. 'balanced' is
    scikit-learn's: n_rows / (n_classes * rows of the class)."""
    if isinstance(setting, str):
        if setting == "none":
            return None
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y_train)
        values = compute_class_weight("balanced", classes=present, y=y_train)
        out = {code: 1.0 for code in range(len(classes))}
        out.update({int(c): float(w) for c, w in zip(present, values)})
        return out
    return class_weight_codes(setting, classes)


def best_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold on `scores` that maximises F1 of the positive class (ties: the
    lowest such threshold). With no positive row, 0.5."""
    from sklearn.metrics import precision_recall_curve

    y_true = np.asarray(y_true).ravel()
    scores = np.asarray(scores, dtype="float64").ravel()
    if y_true.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def threshold_scores(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> Dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class at `threshold`
    (a row is positive when its score is >= threshold)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y_true = np.asarray(y_true).ravel().astype(int)
    y_pred = (np.asarray(scores).ravel() >= threshold).astype(int)
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "precision": float(precision_score(y_true, y_pred, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, zero_division=0)),
            "f1": float(f1_score(y_true, y_pred, zero_division=0))}


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray, classes: List[Any]) -> Dict[str, Any]:
    """What always answering the training split's most common class scores on test."""
    counts = np.bincount(np.asarray(y_train).astype(int), minlength=len(classes))
    code = int(np.argmax(counts))
    rate = float(np.mean(np.asarray(y_test).astype(int) == code)) if len(y_test) else float("nan")
    return {"majority_class": classes[code], "majority_rate": rate}


def mean_baseline(y_train: np.ndarray, y_test: np.ndarray) -> Dict[str, float]:
    """What always answering the training split's mean target scores on test (MAE)."""
    mean = float(np.mean(y_train))
    return {"mean_prediction": mean, "mae": float(np.mean(np.abs(np.asarray(y_test, dtype="float64") - mean)))}


def baseline_verdict(task: str, baseline: Mapping[str, Any], test: Mapping[str, float]) -> Tuple[bool, str]:
    """(beats the baseline, one line for the user) for a run's test metrics."""
    if task == "regression":
        mae = test.get("mae")
        if mae is None:
            return True, ""
        ok = mae < baseline["mae"]
        return ok, (f"always answering the training mean ({baseline['mean_prediction']:.4g}) gives test MAE "
                    f"{baseline['mae']:.4g}; this model {mae:.4g}" + ("" if ok else ": no better"))
    accuracy = test.get("accuracy")
    rate, label = baseline["majority_rate"], baseline["majority_class"]
    if accuracy is None:
        return True, ""
    ok = accuracy > rate
    return ok, (f"always answering {label!r} is right for {rate:.1%} of the test rows; this model's accuracy "
                f"is {accuracy:.1%}" + ("" if ok else ": it does not beat that baseline"))
