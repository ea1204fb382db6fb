"""What `dlrun explain` says: the explained rows, how the methods agree, summary.md and
the terminal summary. Pure functions of the methods' results (no TensorFlow)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dlrun.explain.base import Explained, MethodResult
    from dlrun.explain.task import ExplainResult

TOP = 5  # features named in the agreement line and the terminal table


def row_lines(model: "Explained") -> List[str]:
    """One line per explained row: its place in the test split and the data, truth and prediction."""
    outputs = model.outputs(model.x_test[model.rows]) if model.rows else np.zeros((0, 1))
    predicted = model.predicted(outputs)
    lines = []
    for row, out, guess in zip(model.rows, outputs, predicted):
        truth = model.y_test[row]
        where = f"test row {row} (data row {int(model.data_rows[row])})"
        if model.task == "regression":
            lines.append(f"{where}: {model.target} {model.label(truth)}, predicted {model.label(guess)}")
            continue
        mark = "" if int(guess) == int(truth) else " [misclassified]"
        lines.append(f"{where}: {model.target} {model.label(truth)}, predicted {model.label(guess)} "
                     f"(P={float(out[int(guess)]):.2f}){mark}")
    return lines


def agreement(results: Dict[str, "MethodResult"]) -> Optional[Dict[str, Any]]:
    """Spearman rank correlation of permutation and SHAP importances over the source columns,
    and how many of each one's top features the other shares. None unless both ran."""
    perm = results.get("permutation")
    shap = results.get("shap")
    if perm is None or shap is None or perm.importance is None or shap.importance is None:
        return None
    return rank_agreement(perm.importance, shap.importance)


def rank_agreement(a: pd.Series, b: pd.Series, top: int = TOP) -> Dict[str, Any]:
    """{'spearman': rho over the features both rank, 'top_shared': k, 'top': n}."""
    from scipy.stats import spearmanr

    common = [f for f in a.index if f in b.index]
    x, y = a[common].astype(float).to_numpy(), b[common].astype(float).to_numpy()
    varied = len(common) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0
    rho = float(spearmanr(x, y).statistic) if varied else float("nan")
    n = min(top, len(common))
    first_a = set(a[common].sort_values(ascending=False).index[:n])
    first_b = set(b[common].sort_values(ascending=False).index[:n])
    return {"spearman": rho, "top_shared": len(first_a & first_b), "top": n}


def agreement_line(found: Optional[Dict[str, Any]]) -> Optional[str]:
    if not found:
        return None
    rho = found["spearman"]
    said = "n/a (an importance is constant)" if rho != rho else f"{rho:.2f}"
    strength = "" if rho != rho else (" (they agree)" if rho >= 0.7 else " (they agree in part)" if rho >= 0.4
                                       else " (they disagree: read both with care)")
    return (f"permutation vs SHAP: Spearman rank correlation {said}{strength}; "
            f"{found['top_shared']} of the top {found['top']} features are the same")


def summary_markdown(result: "ExplainResult") -> str:
    """summary.md: what was explained, each method's findings and checks, and agreement."""
    kind = {"tabular": "table rows", "image": "images", "text": "text"}[result.kind]
    source = "the best model of the search" if result.search else "the model"
    lines = [f"# Explanations of {result.run_dir.name}", "",
             f"{source.capitalize()} of `{result.run_dir}`: {result.run.model.name} on {kind} "
             f"(`data={result.run.data.name}`), task {result.task}, target `{result.target}`. "
             "Explained on the test split.", "", "## Rows explained one by one", ""]
    lines += [f"- {line}" for line in result.row_lines] + [""]
    for name, method in result.results.items():
        lines += [f"## {name.replace('_', ' ')} ({result.seconds.get(name, 0):.1f} s)", ""]
        lines += [f"- {line}" for line in method.lines]
        lines += [f"- check: {check}: {text}" for check, text in method.checks.items()]
        if not method.passed:
            lines.append("- **a check failed**: read this method's results with care")
        files = [*method.tables, *method.figures]
        lines += ["", "Files: " + ", ".join(f"[{f}]({f})" for f in files), ""]
        if method.importance is not None:
            lines += [_markdown_table(method.importance.head(TOP * 2)), ""]
    said = agreement_line(result.agreement)
    if said:
        lines += ["## Agreement", "", said, ""]
    if result.failed:
        lines += ["## Failed", ""] + [f"- {name}: {why}" for name, why in result.failed.items()] + [""]
    return "\n".join(lines)


def _markdown_table(importance: pd.Series) -> str:
    rows = [f"| feature | {importance.name or 'importance'} |", "|---|---|"]
    rows += [f"| {name} | {value:.4g} |" for name, value in importance.items()]
    return "\n".join(rows)


def print_report(result: "ExplainResult") -> None:
    """The terminal summary: top features (or where image models look), checks, agreement, files."""
    from rich.markup import escape
    from rich.table import Table

    from dlrun.display import console

    out = console()
    tables = [(n, r.importance) for n, r in result.results.items() if r.importance is not None]
    if tables:
        table = Table(title=f"Most important features for {result.target} (test split)")
        table.add_column("rank", justify="right")
        table.add_column("feature")
        for _, imp in tables:
            table.add_column(escape(str(imp.name)), justify="right")
        order = list(tables[0][1].index[:TOP * 2])
        for rank, feature in enumerate(order, 1):
            table.add_row(str(rank), escape(str(feature)),
                          *[f"{imp.get(feature, float('nan')):.4g}" for _, imp in tables])
        out.print(table)
    for line in result.row_lines:
        out.print(f"  {escape(line)}", soft_wrap=True)
    for name, method in result.results.items():
        out.print(f"[bold]{name}[/] ({result.seconds.get(name, 0):.1f} s)", soft_wrap=True)
        for line in method.lines:
            out.print(f"  {escape(line)}", soft_wrap=True)
        for check, text in method.checks.items():
            mark = "[green]ok[/]" if method.passed else "[red]FAILED[/]"
            out.print(f"  {mark} {escape(check)}: {escape(text)}", soft_wrap=True)
    said = agreement_line(result.agreement)
    if said:
        out.print(escape(said), soft_wrap=True)
    for name, why in result.failed.items():
        out.print(f"[bold red]{name} failed[/]: {escape(why)}", soft_wrap=True)
    timing = ", ".join(f"{n} {s:.1f}s" for n, s in result.seconds.items())
    out.print(f"explained with {timing}", soft_wrap=True)
    out.print(f"results: [bold]{escape(str(result.out))}[/] (summary.md, {len(result.files) - 1} tables and figures)")
