"""What a study shows while it runs: the planned run count, a bar over runs, and one
line per finished run (on a terminal above the bar; in a log, the lines alone)."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dlrun.display import console, fmt

MARKS = {"completed": "[green]✓[/]", "failed": "[red]✗[/]", "interrupted": "[yellow]…[/]"}


class StudyProgress:
    def __init__(self, total: int, metric: str) -> None:
        self.total, self.metric = total, metric
        self.console = console()
        self.progress: Optional[Progress] = None
        self.task: Any = None

    def __enter__(self) -> "StudyProgress":
        self.console.print(f"study: {self.total} runs planned; ranking by {self.metric}")
        if self.console.is_terminal:
            self.progress = Progress(TextColumn("[bold]runs"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[now]}"), console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("runs", total=self.total, now="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def starting(self, *plans: Any) -> None:
        """The run (or the runs trained together, study.fuse) now training."""
        if self.progress is not None:
            names = ", ".join(describe(p) for p in plans)
            self.progress.update(self.task, now=escape(names + (" (fused)" if len(plans) > 1 else "")))

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def finished(self, planned: Any, row: Dict[str, Any], how: str = "", fused: int = 0) -> None:
        """One line for a run: trained now (`how` empty: with its epochs and seconds, and
        how many runs it was `fused` with), or `how` it was had without training (kept
        from an earlier start, ...)."""
        status = row.get("status")
        value = row.get(self.metric)
        if status == "completed" and value is not None:
            outcome = f"{self.metric} {fmt(float(value))}"
        else:
            outcome = escape(str(row.get("reason") or status))
        took = row.get("fit_time_s")
        if how:
            extra = f" ({escape(how)})"
        elif isinstance(took, (int, float)) and math.isfinite(took):
            extra = f" · {row.get('epochs_run')} epochs, {took:.1f}s"
            extra += f" (fused with {fused} other run{'s' if fused > 1 else ''})" if fused else ""
        else:
            extra = ""
        line = f"  {MARKS.get(status, '?')} {escape(describe(planned))}: {outcome}{extra}"
        self.console.print(line, soft_wrap=True)
        self.advance()


def describe(planned: Any) -> str:
    if planned.phase == "lr_search":
        return f"{planned.contender} lr={planned.learning_rate:g} (lr grid)"
    return f"{planned.contender} seed {planned.seed}"
