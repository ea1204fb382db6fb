"""The end-of-search report at the terminal: the leading trials, the best one
refit on test, and where every file is."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from dlrun.display import console, fmt
from dlrun.search.runner import SearchResult

SHOWN = 10  # trials shown in the terminal table (all of them are in trials.csv)


def short_name(key: str, keys: list) -> str:
    """'optimizer.learning_rate' -> 'learning_rate' unless another key ends the same way."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in keys) <= 1 else key


def cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""  # inactive hyperparameter or missing value
    return fmt(value)


def print_report(result: SearchResult) -> None:
    out = console()
    if result.status == "worker":  # a worker of a distributed search: the chief reports
        out.print(escape(result.message))
        return
    frame = result.trials
    if result.message:
        out.print(f"[bold red]{escape(result.message)}[/]")
    if frame.empty:
        out.print("no trial ran")
        return
    best = result.best
    direction = best["direction"] if best else "min"
    done = frame[frame["status"] == "completed"].sort_values("objective", ascending=direction == "min")
    hp_cols = list(best["hyperparameters"]) if best else []
    table = Table(title=f"Leading trials ({len(done)} completed, "
                  f"{int((frame['status'] == 'failed').sum())} failed)", title_justify="left")
    columns = ["trial", *hp_cols, "objective", "best_epoch", "duration_s"]
    if "verdict" in frame and frame["verdict"].notna().any():
        columns.append("verdict")  # the diagnosis of each trial (dlrun.diagnostics)
    for col in columns:
        table.add_column(short_name(col, hp_cols), justify="left" if col in ("trial", "verdict") else "right")
    for _, row in done.head(SHOWN).iterrows():
        table.add_row(*(escape(cell(row.get(c))) for c in columns))
    out.print(table)
    d = result.run_dir
    if best:
        out.print(f"best: trial {best['trial']}, {best['objective']} = {fmt(best['value'])}")
        if "refit" in best:
            scores = "  ".join(f"{k} {fmt(v)}" for k, v in best["refit"]["test"].items())
            out.print(f"refit on train+validation ({best['refit']['epochs']} epochs), test: {scores}")
        out.print(f"re-run the best config: [bold]dlrun train --config-dir {escape(str(d))} --config-name best[/]",
                  soft_wrap=True)
    out.print(f"results: [bold]{escape(str(d))}[/] (trials.csv/.md/.parquet, best.yaml, best_metrics.json, plots)",
              soft_wrap=True)
