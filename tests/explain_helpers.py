"""Build an `Explained` straight from a Keras model and arrays (no run folder), for
tests of single explanation methods."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd


def explained(model: Any, x_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, task: str,
              classes: Sequence[str] = (), feature_names: Optional[List[str]] = None,
              rows: Sequence[int] = (0, 1, 2), metric: Optional[str] = None,
              source_train: Optional[pd.DataFrame] = None, source_test: Optional[pd.DataFrame] = None,
              transform: Optional[Callable[[pd.DataFrame], np.ndarray]] = None,
              groups: Optional[Dict[str, List[int]]] = None, target: str = "y", seed: int = 0):
    """An Explained for `model`. Tables (2-D x) default to source frames equal to the model's
    inputs (identity transform); image-shaped x gets no source frames."""
    from dlrun.explain.base import Explained
    from dlrun.explain.metrics import metric as run_metric

    image = x_train.ndim > 2
    names = feature_names or [f"x{i}" for i in range(int(np.prod(x_train.shape[1:])))]
    if not image and source_train is None:
        source_train = pd.DataFrame(x_train, columns=names)
        source_test = pd.DataFrame(x_test, columns=names)
        transform = transform or (lambda frame: frame.to_numpy(dtype="float32"))
    metric = metric or ("mae" if task == "regression" else "accuracy")
    return Explained(
        model=model, task=task, target=target, classes=[str(c) for c in classes], image=image,
        input_shape=tuple(x_train.shape[1:]), feature_names=names,
        groups=groups or {n: [i] for i, n in enumerate(names)}, x_train=x_train, x_test=x_test,
        y_test=np.asarray(y_test), rows=list(rows), data_rows=np.arange(len(x_test)) + 1,
        metric=run_metric(metric), seed=seed,
        source_train=source_train, source_test=source_test, transform=transform)
