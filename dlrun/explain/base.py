"""What every explanation method receives and returns.

A method is one function `explain(model: Explained, options: ExplainConfig) -> MethodResult`
(Captum's shape: the model, the inputs and the options in; attributions out), listed in
`dlrun.explain.registry`. Methods compute; the task writes their tables and figures."""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import pandas as pd

PREDICT_BATCH = 4096  # rows per call to the model


@contextmanager
def numpy_global_rng(seed: Optional[int] = None) -> Iterator[None]:
    """For libraries that draw from NumPy's global generator (shap, its beeswarm, tf-keras-vis's
    SmoothGrad): seeded with `seed` when given, and the caller's state restored afterwards."""
    state = np.random.get_state()
    if seed is not None:
        np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextmanager
def keras_list_input_quiet() -> Iterator[None]:
    """shap and tf-keras-vis pass a functional model a list of one input; Keras warns on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*structure of `inputs`")
        yield


@dataclass
class Metric:
    """The run's own metric (dlrun.explain.metrics.SCORES), scored by `Explained.score`."""
    name: str                                      # accuracy, auc, mae, ...
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (y_true, outputs, predicted) -> value
    greater_is_better: bool


@dataclass
class Explained:
    """A trained run, ready to explain: the model, its data and how to read its outputs.

    Rows are the model's inputs (scaled, one-hot encoded, image-shaped for a CNN). For
    tables, `source_*` hold the same rows as the user's file has them, and `transform`
    turns such a frame into model inputs."""
    model: Any                         # the loaded keras.Model
    task: str                          # binary | multiclass | regression
    target: str                        # the target column's name
    classes: List[str]                 # class names in output order ([] for regression)
    image: bool                        # True: a CNN on image-shaped rows
    input_shape: tuple                 # one row's shape
    feature_names: List[str]           # one per model-input column ("age", "color = red"); pixels for images
    groups: Dict[str, List[int]]       # source column -> its model-input columns (several for one-hot)
    x_train: np.ndarray                # model inputs: training split (as fitted; not resampled)
    x_test: np.ndarray                 # model inputs: test split
    y_test: np.ndarray                 # class codes (index into classes) or target values in its units
    rows: List[int]                    # test-row positions explained one by one (explain.rows)
    data_rows: np.ndarray              # per test row: its 1-based row in the data as read
    metric: Metric                     # the run's own metric (score with `score`)
    seed: int = 0
    threshold: Optional[float] = None  # binary: the score that counts as the positive class
    output: str = "probability"        # binary: probability | margin (hinge)
    source_train: Optional[pd.DataFrame] = None  # tables: the training rows as read
    source_test: Optional[pd.DataFrame] = None   # tables: the test rows as read
    transform: Optional[Callable[[pd.DataFrame], np.ndarray]] = None  # tables: rows as read -> model inputs
    text: Optional[Any] = None         # a text column's layout in each row (dlrun.data.prepare.TextLayout)
    _call: Any = field(default=None, repr=False)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for `x`, in the user's terms: (n, classes) probabilities for
        classification (binary: [1 - p, p]; a hinge model's margin s as [-s, s]), (n,) target
        values for regression. model(x) in batches: ~100x faster than model.predict for the
        thousands of small calls explainers make."""
        x = np.asarray(x, dtype="float32").reshape(-1, *self.input_shape)
        if self._call is None:
            import tensorflow as tf

            self._call = tf.function(lambda batch: self.model(batch, training=False), reduce_retracing=True)
        parts = [np.asarray(self._call(x[i:i + PREDICT_BATCH])) for i in range(0, len(x), PREDICT_BATCH)]
        out = np.concatenate(parts) if parts else np.zeros((0, max(1, len(self.classes))), "float32")
        out = out.reshape(len(x), -1).astype("float64")
        if self.task == "regression":
            return out[:, 0]
        if self.task == "binary":
            score = out[:, 0]
            return np.stack([-score, score] if self.output == "margin" else [1.0 - score, score], axis=1)
        return out

    def predicted(self, outputs: np.ndarray) -> np.ndarray:
        """Class codes (classification) or values (regression) from `outputs`."""
        if self.task == "regression":
            return outputs
        if self.task == "binary":
            cut = self.threshold if self.threshold is not None else (0.0 if self.output == "margin" else 0.5)
            return (outputs[:, 1] >= cut).astype(int)
        return outputs.argmax(axis=1)

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> float:
        """The run's metric of `outputs` (from `outputs()`) against `y_true`."""
        return self.metric.score(np.asarray(y_true), outputs, self.predicted(outputs))

    def label(self, value: Any) -> str:
        """A class code or target value as the user reads it."""
        if self.task == "regression":
            return f"{float(value):.4g}"
        return str(self.classes[int(value)])

    @functools.cached_property
    def value_range(self) -> tuple:
        """(min, max) of the training inputs: image methods draw and search inside it."""
        return float(np.min(self.x_train)), float(np.max(self.x_train))

    @property
    def columns(self) -> List[str]:
        """The source columns (what the user's table has), in order."""
        return list(self.groups)


@dataclass
class MethodResult:
    """What a method hands back; the task writes it into the explain folder."""
    tables: Dict[str, pd.DataFrame] = field(default_factory=dict)  # file name (.csv) -> table
    figures: Dict[str, Any] = field(default_factory=dict)          # file name (.png) -> matplotlib Figure
    importance: Optional[pd.Series] = None  # source column -> importance, largest first (summary, agreement)
    checks: Dict[str, str] = field(default_factory=dict)           # check name -> one-line outcome
    passed: bool = True                     # False: a check failed (shown in the summary)
    lines: List[str] = field(default_factory=list)                 # what the summary should say
