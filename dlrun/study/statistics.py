"""The numbers a study compares contenders by: t-intervals over seeds, ranks, ties,
time-to-target (AlgoPerf style: a run that never reaches the target counts as inf)
and the train/validation gap. Pure functions of plain numbers and history frames,
so they are tested on hand-computed values without TensorFlow."""
from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from dlrun.results.sweep import metric_direction

NAN = float("nan")


def maximize(metric: str) -> bool:
    """Whether larger is better for `metric` (accuracy, auc, f1, r2...), as dlrun tune decides."""
    return metric_direction(metric) == "max"


def _floats(values: Iterable[float]) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)


def t_interval(values: Iterable[float], confidence: float = 0.95) -> Tuple[float, float, float, float]:
    """(mean, std, low, high): the Student-t interval mean ± t·std/√n (std with ddof=1)
    over the non-NaN values; std and the interval are NaN for one value, all NaN for none."""
    x = _floats(values)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return NAN, NAN, NAN, NAN
    mean = float(x.mean())
    if x.size == 1:
        return mean, NAN, NAN, NAN
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * std / math.sqrt(x.size)
    return mean, std, mean - half, mean + half


FLOAT32_SLACK = 1e-6  # relative: float32 holds about 7 significant digits


def curve_summary(history: Optional[pd.DataFrame], column: str, maximize: bool,
                  target: Optional[float]) -> dict:
    """One run's curve of `column` (e.g. val_accuracy): best_val, final_val, and the
    epoch and elapsed seconds (cumulative epoch_time_s) at which it first reached
    `target` (inf when it never did; NaN without a target or without a curve)."""
    out = {"best_val": NAN, "final_val": NAN, "epochs_to_target": NAN, "seconds_to_target": NAN}
    if history is None or column not in history.columns or history.empty:
        return out
    values = _floats(history[column])
    if not np.isnan(values).all():
        out["best_val"] = float(np.nanmax(values) if maximize else np.nanmin(values))
    out["final_val"] = float(values[-1])
    if target is None:
        return out
    # Keras logs metrics in float32: 171/180 is 0.94999999, which must count as reaching 0.95
    slack = FLOAT32_SLACK * max(1.0, abs(target))
    hit = np.flatnonzero(values >= target - slack if maximize else values <= target + slack)  # NaN never reaches
    if hit.size == 0:
        out["epochs_to_target"] = out["seconds_to_target"] = math.inf
        return out
    i = int(hit[0])
    out["epochs_to_target"] = float(history["epoch"].iloc[i]) if "epoch" in history.columns else float(i + 1)
    if "epoch_time_s" in history.columns:
        out["seconds_to_target"] = float(_floats(history["epoch_time_s"])[: i + 1].sum())
    return out


def median_with_inf(values: Iterable[float]) -> float:
    """The median of the non-NaN values, inf counting as larger than anything (the
    median of [1, inf, inf] is inf: most runs never got there); NaN when none."""
    x = np.sort(_floats(values))
    x = x[~np.isnan(x)]
    if x.size == 0:
        return NAN
    mid = x.size // 2
    if x.size % 2:
        return float(x[mid])
    lo, hi = x[mid - 1], x[mid]
    return float(hi) if math.isinf(hi) else float((lo + hi) / 2)


def reached(values: Iterable[float]) -> int:
    """How many runs reached the target (finite time-to-target)."""
    return int(np.isfinite(_floats(values)).sum())


def ranks(means: Sequence[float], maximize: bool) -> List[Optional[int]]:
    """Rank per mean, 1 = best; equal means share the smaller rank; NaN gets None.
    Means equal to 12 significant digits count as equal (float sums of the same
    values can differ in the last bit)."""
    rounded = [float(f"{m:.12g}") for m in _floats(means)]
    ranked = pd.Series(rounded, dtype=float).rank(method="min", ascending=not maximize)
    return [None if pd.isna(r) else int(r) for r in ranked]


def tied(best_low: float, best_high: float, low: float, high: float) -> Optional[bool]:
    """Whether an interval overlaps the best's (a tie at this many seeds); None when
    either interval is unknown (n < 2)."""
    bounds = _floats([best_low, best_high, low, high])
    if np.isnan(bounds).any():
        return None
    return bool(low <= best_high and best_low <= high)


def overfit_gap(train_value: float, val_value: float, maximize: bool) -> float:
    """How much better the training score is than the validation score; positive
    means overfitting, whichever way the metric points."""
    train, val = _floats([train_value, val_value])
    return float(train - val if maximize else val - train)
