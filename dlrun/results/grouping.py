"""`dlrun results --group-by`: one row per distinct combination of keys, with the
number of runs, mean, standard deviation, 95% Student-t interval (the one a study
uses: dlrun.study.statistics.t_interval), min and max of a metric. Pure functions of
the numbers, tested on known values."""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

STATS = ("n", "mean", "std", "ci_low", "ci_high", "min", "max")  # the columns after the keys
NAN = float("nan")


def summarize(values: Sequence[Optional[float]], confidence: float = 0.95) -> Dict[str, Any]:
    """The STATS of `values` (None: a run without a value, not counted in n); the
    interval is a study's (dlrun.study.statistics.t_interval), imported only when needed."""
    from dlrun.study.statistics import t_interval

    numbers = [float(v) for v in values if v is not None]
    mean, std, low, high = t_interval(numbers, confidence)
    return {"n": len(numbers), "mean": mean, "std": std, "ci_low": low, "ci_high": high,
            "min": min(numbers, default=NAN), "max": max(numbers, default=NAN)}


def group(rows: Sequence[Tuple[Tuple[Hashable, ...], Optional[float]]], direction: str,
          confidence: float = 0.95) -> List[Tuple[Tuple[Hashable, ...], Dict[str, Any]]]:
    """Group (key values, metric value) pairs by their key values and summarize each
    group; best mean first (`direction` 'max' or 'min'), groups without a value last,
    equal means in order of first appearance."""
    groups: Dict[Tuple[Hashable, ...], List[Optional[float]]] = {}
    for keys, value in rows:
        groups.setdefault(tuple(keys), []).append(value)
    out = [(keys, summarize(values, confidence)) for keys, values in groups.items()]
    sign = -1 if direction == "max" else 1
    return sorted(out, key=lambda item: (math.isnan(item[1]["mean"]),
                                         0.0 if math.isnan(item[1]["mean"]) else sign * item[1]["mean"]))
