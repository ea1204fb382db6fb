"""A study reads its runs back from their folders (metrics.json, history.csv), as any
tool could: the run folder is the record, not the process that trained it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import pandas as pd

from dlrun.preflight import SPLITS
from dlrun.results.rundir import read_record

LEADING = ["contender", "seed", "phase", "learning_rate", "status", "reason", "epochs_run", "fit_time_s",
           "best_val", "final_val", "epochs_to_target", "seconds_to_target"]


def read_history(run_dir: Path) -> Optional[pd.DataFrame]:
    try:
        return pd.read_csv(Path(run_dir) / "history.csv")
    except (OSError, ValueError):
        return None


def read_run(run_dir: Union[str, Path, None], metric: str,
             target: Optional[float]) -> Tuple[Dict[str, Any], Optional[pd.DataFrame]]:
    """One row of runs.csv and the run's history. The row: the run's status, final metrics
    as <split>_<name>, and what its validation curve of `metric`'s measure says (best,
    final, epochs and seconds to `target`)."""
    from dlrun.study.comparison import split_metric
    from dlrun.study.statistics import curve_summary, maximize

    row: Dict[str, Any] = {"run_dir": None if run_dir is None else str(run_dir), "status": "failed",
                           "reason": "the run left no metrics.json"}
    if run_dir is None:
        return row, None
    metrics = read_record(Path(run_dir) / "metrics.json")
    if metrics:
        row.update(status=metrics.get("status"), reason=metrics.get("failure_reason"),
                   epochs_run=metrics.get("epochs_run"), fit_time_s=metrics.get("fit_time_s"),
                   verdict=metrics.get("verdict"))
        for split in SPLITS:
            for key, value in (metrics.get(split) or {}).items():
                row[f"{split}_{key}"] = value
    column = f"val_{split_metric(metric)[1]}"
    history = read_history(Path(run_dir))
    row.update(curve_summary(history, column, maximize(column), target))
    return row, history


def ordered(runs: pd.DataFrame, contenders: List[str]) -> pd.DataFrame:
    """runs.csv's order: contender (as the study lists them), phase, learning rate, seed;
    columns: the run's identity and curve first, every metric after, the run folder last."""
    runs = runs.copy()
    runs["_c"] = runs["contender"].map({c: i for i, c in enumerate(contenders)})
    runs["_p"] = runs["phase"].map({"lr_search": 0, "final": 1})
    sort = ["_c", "_p", "learning_rate", "seed"] if "learning_rate" in runs else ["_c", "_p", "seed"]
    runs = runs.sort_values(sort, kind="stable").drop(columns=["_c", "_p"]).reset_index(drop=True)
    metrics = sorted(c for c in runs.columns if c.split("_", 1)[0] in SPLITS and c not in LEADING)
    first = [c for c in LEADING if c in runs.columns]
    rest = [c for c in runs.columns if c not in first and c not in metrics and c != "run_dir"]
    return runs[first + metrics + rest + ["run_dir"]]
