"""The per-contender comparison of a study: one row per contender from its final
runs (mean and 95% t-interval over seeds, rank, tie with the best, curve and
time-to-target summaries), and the files it is written to (CSV, Parquet, Markdown)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from dlrun.results.rundir import write_text
from dlrun.results.tables import to_markdown, write_table
from dlrun.study import statistics as st

SPLITS = ("train", "val", "test")
COLUMNS = ["rank", "contender", "status", "n", "failed", "metric", "mean", "std", "ci_low", "ci_high",
           "tied_with_best", "best_val", "final_val", "test", "gap", "epochs_to_target", "seconds_to_target",
           "reached", "epochs", "seconds", "learning_rate", "verdicts", "reason"]
DTYPES = {"rank": "Int64", "n": "Int64", "failed": "Int64", "reached": "Int64", "tied_with_best": "boolean",
          "contender": str, "status": str, "metric": str, "verdicts": str, "reason": str}


def split_metric(metric: str) -> Tuple[str, str]:
    """('test', 'accuracy') for test_accuracy; ('', name) when there is no split prefix."""
    split, _, name = metric.partition("_")
    return (split, name) if split in SPLITS and name else ("", metric)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, or NaNs when the runs never wrote it (every run failed)."""
    if name not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if values.notna().any() else float("nan")


def _status(statuses: pd.Series) -> str:
    done = int((statuses == "completed").sum())
    if len(statuses) and done == len(statuses):
        return "completed"
    if done:
        return "partial"
    return "pending" if (statuses == "pending").all() else "failed"


def verdict_counts(verdicts: Sequence[Any]) -> str:
    """The diagnoses of a contender's runs, most frequent first: 'vanishing_gradients x3',
    'ok x2, overfitting x1' (blank when no run has one)."""
    counts = pd.Series([v for v in verdicts if isinstance(v, str) and v], dtype=object).value_counts(sort=True)
    return ", ".join(f"{v} x{n}" for v, n in counts.items())


def _contender_row(contender: str, final: pd.DataFrame, metric: str, target: Optional[float]) -> dict:
    _, name = split_metric(metric)
    statuses = final["status"].astype(str) if len(final) else pd.Series([], dtype=object)
    done = final[statuses == "completed"]
    mean, std, low, high = st.t_interval(_column(done, metric))
    to_epochs, to_seconds = _column(done, "epochs_to_target"), _column(done, "seconds_to_target")
    status = _status(statuses)
    reasons = final.loc[statuses != "completed", "reason"].dropna() if "reason" in final.columns else []
    reasons = [str(r) for r in reasons if str(r)]
    lrs = _column(final, "learning_rate").dropna()
    gap = [st.overfit_gap(t, v, st.maximize(name))
           for t, v in zip(_column(done, f"train_{name}"), _column(done, f"val_{name}"))]
    return {
        "contender": contender, "status": status, "n": len(done), "failed": int((statuses == "failed").sum()),
        "metric": metric, "mean": mean, "std": std, "ci_low": low, "ci_high": high,
        "best_val": _mean(_column(done, "best_val")), "final_val": _mean(_column(done, "final_val")),
        "test": _mean(_column(done, f"test_{name}")), "gap": _mean(pd.Series(gap, dtype=float)),
        "epochs_to_target": float("nan") if target is None else st.median_with_inf(to_epochs),
        "seconds_to_target": float("nan") if target is None else st.median_with_inf(to_seconds),
        "reached": pd.NA if target is None else st.reached(to_epochs),
        "epochs": _mean(_column(done, "epochs_run")), "seconds": _mean(_column(done, "fit_time_s")),
        "learning_rate": float(lrs.iloc[0]) if len(lrs) else float("nan"),
        "verdicts": verdict_counts(final["verdict"] if "verdict" in final.columns else []),
        "reason": reasons[0] if reasons and status in ("failed", "partial") else "",
    }


def compare_runs(runs: pd.DataFrame, metric: str, target: Optional[float]) -> pd.DataFrame:
    """One row per contender (every contender in `runs`, in order of appearance),
    from its `phase == "final"` runs, ranked on the mean of `metric` (e.g.
    test_accuracy) over its completed runs; columns as COLUMNS. Ties: the contender's
    95% interval overlaps rank 1's (NA when either is unknown, n < 2)."""
    contenders = list(dict.fromkeys(runs["contender"].astype(str)))
    final = runs[runs["phase"] == "final"] if "phase" in runs.columns else runs
    rows = [_contender_row(c, final[final["contender"].astype(str) == c], metric, target) for c in contenders]
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("rank", "tied_with_best")])
    frame.insert(0, "rank", st.ranks(frame["mean"].tolist(), st.maximize(split_metric(metric)[1])))
    frame = frame.assign(_order=range(len(frame)), _unranked=frame["rank"].isna())
    frame = frame.sort_values(["_unranked", "rank", "_order"], kind="stable").drop(columns=["_order", "_unranked"])
    frame = frame.reset_index(drop=True)
    best = frame.iloc[0] if len(frame) and pd.notna(frame["rank"].iloc[0]) else None
    frame["tied_with_best"] = [
        None if best is None or pd.isna(r["rank"])
        else st.tied(best["ci_low"], best["ci_high"], r["ci_low"], r["ci_high"])
        for _, r in frame.iterrows()]
    return frame[COLUMNS].astype(DTYPES)


def _num(value: object, digits: int = 4) -> str:
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    return "inf" if np.isinf(value) else f"{value:.{digits}g}"


def comparison_markdown(comparison: pd.DataFrame, note_lines: List[str]) -> str:
    """A ranked Markdown table for comparison.md, the line that explains how to read
    it, then `note_lines` as a bullet list."""
    has_target = comparison["reached"].notna().any()
    rows = []
    for _, r in comparison.iterrows():
        row = {"rank": "" if pd.isna(r["rank"]) else str(r["rank"]), "contender": r["contender"],
               "status": r["status"], "n": str(r["n"]),
               "mean ± std": _num(r["mean"]) + (f" ± {_num(r['std'], 2)}" if pd.notna(r["std"]) else ""),
               "95% interval": f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if pd.notna(r["ci_low"]) else "",
               "tied": {True: "✓", False: ""}.get(r["tied_with_best"], "?" if pd.notna(r["rank"]) else ""),
               "best val": _num(r["best_val"]), "test": _num(r["test"]), "gap": _num(r["gap"], 3)}
        if has_target:
            row["epochs to target"] = _num(r["epochs_to_target"], 3)
            row["reached"] = f"{r['reached']}/{r['n']}" if r["n"] else ""
        row.update({"lr": _num(r["learning_rate"], 3), "seconds": _num(r["seconds"], 3), "reason": r["reason"]})
        rows.append(row)
    table = to_markdown(pd.DataFrame(rows)) if rows else "(no contenders)"
    metric = comparison["metric"].iloc[0] if len(comparison) else "metric"
    single = (comparison["n"] == 1).any()
    legend = (f"Ranked by mean {metric} over seeds. Intervals are 95% Student-t intervals over seeds"
              + (" (none for a contender with n = 1: one seed gives no spread)" if single else "")
              + "; ✓ marks contenders whose interval overlaps the best's (not distinguishable at this many seeds)"
              + ("; inf = the target was never reached (median over seeds)." if has_target else "."))
    return "\n".join([table, "", legend] + ([""] + [f"- {line}" for line in note_lines] if note_lines else [])) + "\n"


def write_comparison(comparison: pd.DataFrame, runs: pd.DataFrame, study_dir: Path, notes: List[str]) -> List[Path]:
    """Write comparison.csv / .parquet / .md and runs.csv into `study_dir`, each atomically."""
    study_dir = Path(study_dir)
    written = write_table(comparison, study_dir / "comparison", ("csv", "parquet"))
    written.append(write_text(study_dir / "comparison.md", comparison_markdown(comparison, notes)))
    written += write_table(runs, study_dir / "runs", ("csv",))
    return written
