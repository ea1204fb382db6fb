"""Resampling of the training split for imbalanced classes (data.resample), with
imbalanced-learn's random samplers. Validation and test rows are never resampled:
they must keep the class shares the model will meet."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.errors import DataError


def class_counts(y: np.ndarray, classes: List[Any]) -> Dict[str, int]:
    """Rows per class, keyed by the class label as text."""
    counts = np.bincount(y, minlength=len(classes))
    return {str(label): int(n) for label, n in zip(classes, counts)}


def resample(x: np.ndarray, y: np.ndarray, task: str, cfg: DataConfig,
             classes: List[Any]) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """(x, y) of the training split over- or undersampled to equal class counts, and
    what was done (for the data report)."""
    if task == "regression":
        raise DataError(f"data.resample={cfg.resample}: resampling balances classes; this target is "
                        "numeric (regression). Set data.resample=none")
    from imblearn.under_sampling import RandomUnderSampler
    from imblearn.over_sampling import RandomOverSampler

    sampler = (RandomOverSampler if cfg.resample == "oversample" else RandomUnderSampler)(
        random_state=cfg.split_seed)
    before = class_counts(y, classes)
    x_out, y_out = sampler.fit_resample(x, y)
    order = np.random.default_rng(cfg.split_seed).permutation(len(y_out))  # samplers append by class
    report = {"method": cfg.resample, "rows_before": int(len(y)), "rows_after": int(len(y_out)),
              "class_counts_before": before, "class_counts_after": class_counts(y_out, classes)}
    return np.asarray(x_out, dtype="float32")[order], np.asarray(y_out)[order].astype(y.dtype), report
