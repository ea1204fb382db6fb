"""The study's comparison at the terminal: a ranked rich table, failed contenders
in red with their reason, partial ones in yellow."""
from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape
from rich.table import Table

from dlrun.display import fmt

STYLES = {"failed": "red", "partial": "yellow", "pending": "dim"}


def _f(value: object) -> str:
    """fmt for a cell that may be missing (blank) or inf."""
    if value is None or pd.isna(value):
        return ""
    return "inf" if math.isinf(float(value)) else fmt(float(value))


def _g(value: object, spec: str) -> str:
    """A compact number (learning rate, seconds), blank when missing."""
    return "" if value is None or pd.isna(value) else format(float(value), spec)


def _spread(mean: object, std: object) -> str:
    """The std in the mean's own format (0.8061 ± 0.0008, not ± 7.501e-04)."""
    shown = _f(mean)
    if "e" in shown or shown in ("", "inf", "nan"):
        return _f(std)
    return f"{float(std):.4f}"


def _to_target(row: pd.Series) -> str:
    """'12 (3/3)': median epochs to target and how many seeds reached it."""
    if not row["n"]:
        return ""
    epochs = float(row["epochs_to_target"])
    shown = "inf" if math.isinf(epochs) else f"{epochs:g}"
    return f"{shown} ({row['reached']}/{row['n']})"


def comparison_table(comparison: pd.DataFrame) -> Table:
    """The comparison ranked (rows as sorted by compare_runs): mean ± std, the 95%
    interval, ✓ when tied with the best ('?' when unknown), and time to target when
    the study has a target."""
    metric = comparison["metric"].iloc[0] if len(comparison) else "metric"
    has_target = bool(comparison["reached"].notna().any())
    has_notes = bool((comparison["status"].isin(list(STYLES)) | (comparison["reason"].fillna("") != "")).any())
    has_verdicts = "verdicts" in comparison and bool((comparison["verdicts"].fillna("") != "").any())
    other = ("final val", "final_val") if str(metric).startswith("test_") else ("test", "test")  # not the mean again
    table = Table(title=f"{metric}, ranked (95% t-interval over seeds)", title_justify="left")
    for name, justify in [("rank", "right"), ("contender", "left"), ("n", "right"), ("mean ± std", "right"),
                          ("95% interval", "right"), ("tied", "center"), (other[0], "right"),
                          ("best val", "right")] + ([("to target", "right")] if has_target else []) + \
                         [("lr", "right"), ("seconds", "right")] + ([("diagnosis", "left")] if has_verdicts else []) + \
                         ([("note", "left")] if has_notes else []):
        table.add_column(name, justify=justify)
    for _, r in comparison.iterrows():
        ranked = pd.notna(r["rank"])
        mean = _f(r["mean"]) + (f" ± {_spread(r['mean'], r['std'])}" if pd.notna(r["std"]) else "")
        interval = f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]" if pd.notna(r["ci_low"]) else ""
        tie = "" if not ranked else {True: "✓", False: ""}.get(r["tied_with_best"], "?")
        note = r["status"] if r["status"] in STYLES else ""
        if r["reason"]:
            note = f"{note}: {r['reason']}"
        cells = [str(r["rank"]) if ranked else "", escape(str(r["contender"])), str(r["n"]), mean, interval, tie,
                 _f(r[other[1]]), _f(r["best_val"])] + ([_to_target(r)] if has_target else []) + \
                [_g(r["learning_rate"], ".3g"), _g(r["seconds"], ".1f")] + \
                ([escape(str(r["verdicts"] or ""))] if has_verdicts else []) + ([escape(note)] if has_notes else [])
        table.add_row(*cells, style=STYLES.get(r["status"]))
    return table
