"""What the researcher sees at the terminal: a live rich progress bar per
epoch with the current metrics, then a table of final metrics."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_console: Optional[Console] = None


def console() -> Console:
    """One stderr-free console for results; progress and tables go to stdout."""
    global _console
    if _console is None:
        _console = Console(highlight=False)
    return _console


def error(message: str) -> None:
    """One line on stderr: 'dlrun: error: <message>'."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]dlrun: error:[/] {escape(message)}")


def warn(message: str) -> None:
    """One line on stderr: 'dlrun: warning: <message>'."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]dlrun: warning:[/] {escape(message)}")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3e}"
    return str(value)


def short_metrics(logs: Mapping[str, Any], keep: int = 6) -> str:
    items = [(k, v) for k, v in logs.items() if k != "learning_rate"][:keep]
    return "  ".join(f"{k} {fmt(float(v))}" for k, v in items)


def make_progress_callback(epochs: int, title: str, enabled: bool) -> Any:
    """A keras callback that shows a rich progress bar over epochs with the last metrics."""
    import keras
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class RichEpochProgress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.progress: Optional[Progress] = None
            self.task = None

        def on_train_begin(self, logs: Optional[Dict] = None) -> None:
            if not enabled or not console().is_terminal:  # a log gets plain lines (on_epoch_end)
                return
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                                     MofNCompleteColumn(), TextColumn("epochs"), TimeElapsedColumn(),
                                     TextColumn("{task.fields[metrics]}"), console=console())
            self.progress.start()
            self.task = self.progress.add_task(title, total=epochs, metrics="")

        def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
            if self.progress is not None:
                self.progress.update(self.task, completed=epoch + 1, metrics=short_metrics(logs or {}))
            elif enabled and ((epoch + 1) % max(1, epochs // 10) == 0 or epoch == 0):
                console().print(f"epoch {epoch + 1}/{epochs}  {short_metrics(logs or {})}", soft_wrap=True)

        def on_train_end(self, logs: Optional[Dict] = None) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return RichEpochProgress()


def metrics_table(metrics: Mapping[str, Mapping[str, float]], title: str = "Final metrics") -> Table:
    """Rows: metric names; columns: train / validation / test."""
    splits = [s for s in ("train", "val", "test") if s in metrics]
    names: list = []
    for split in splits:
        names += [n for n in metrics[split] if n not in names]
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for split in splits:
        table.add_column({"val": "validation"}.get(split, split), justify="right")
    for name in names:
        table.add_row(name, *(fmt(metrics[s].get(name, float("nan"))) for s in splits))
    return table


def predictions_report(result: Any, shown: int = 5) -> None:
    """What `dlrun predict` did: rows, where they went, the first rows, the answers'
    spread, and scores when the file held the target."""
    out = console()
    frame, target = result.frame, result.target
    predicted = f"predicted_{target}"
    extra = [c for c in frame.columns if c == predicted or c.startswith(("probability_", "score_"))]
    keep = ([target] if target in frame.columns else []) + extra
    table = Table(title=f"First rows of {len(frame):,}", title_justify="left")
    for col in ["row", *keep]:
        table.add_column(col, justify="right")
    for i, row in frame[keep].head(shown).iterrows():
        table.add_row(str(i + 1), *(escape(fmt(v)) for v in row.tolist()))
    out.print(table)
    if result.task != "regression":
        counts = frame[predicted].astype(str).value_counts()
        out.print("predicted: " + ", ".join(f"{escape(k)} {v:,} ({v / len(frame):.1%})" for k, v in counts.items()))
    if result.metrics:
        scores = "  ".join(f"{k} {fmt(v)}" for k, v in result.metrics.items() if k != "rows")
        out.print(f"against the file's {escape(target)!s} column ({result.metrics['rows']:,} rows): {scores}")
    out.print(f"predictions: [bold]{escape(str(result.out))}[/] (model {escape(str(result.model_path))})",
              soft_wrap=True)


def run_verdict_lines(metrics: Mapping[str, Any]) -> list:
    """Lines for the end of a run: the decision threshold a binary run chose, and how
    the model compares with answering without looking at the features."""
    from dlrun.classification import baseline_verdict

    lines = []
    threshold = metrics.get("threshold")
    if threshold and threshold.get("chosen_by", "").startswith("auto"):
        lines.append(f"threshold {threshold['value']:.4g} ({threshold['chosen_by']}); test metrics use it")
    base, test = metrics.get("baseline"), metrics.get("test") or {}
    if base:
        ok, text = baseline_verdict(metrics.get("data", {}).get("task", ""), base, test)
        if text:
            lines.append(escape(text) if ok else f"[bold yellow]{escape(text)}[/]")
    return lines
