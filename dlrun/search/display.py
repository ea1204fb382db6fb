"""The live view of a search: trial k of N, the current trial's hyperparameters
and epoch progress, and the best trial so far. On a terminal it redraws in
place; in a log (no terminal) it prints one line per finished trial."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlrun.display import console, fmt, short_metrics


def values_text(values: Mapping[str, Any]) -> str:
    return "  ".join(f"{k}={fmt(v)}" for k, v in values.items() if not k.startswith("tuner/"))


def table_id(trial_id: Any) -> Any:
    """A trial's id as the trials table shows it: keras-tuner's ids are zero-padded
    strings ('03'), the table's are numbers (3)."""
    return int(trial_id) if str(trial_id).isdigit() else trial_id


class SearchView:
    def __init__(self, total: Optional[int], objective: str, direction: str, enabled: bool = True) -> None:
        self.total, self.objective, self.direction = total, objective, direction
        self.enabled = enabled
        self.console = console()
        self.live_mode = enabled and self.console.is_terminal
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=20),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console)
        self.trials_task = self.progress.add_task("trials", total=total, info="")
        self.epoch_task = self.progress.add_task("epochs", total=None, info="", visible=False)
        self.current: Dict[str, Any] = {}
        self.current_id = ""
        self.started: Dict[str, Dict[str, Any]] = {}  # trials begun and not yet ended
        self.best: Optional[Dict[str, Any]] = None
        self.live: Optional[Live] = None

    def render(self) -> Group:
        table = Table(show_header=False, box=None, padding=(0, 1))
        if self.current_id:
            values = f": {values_text(self.current)}" if self.current else ""
            table.add_row("[bold]trial[/]", escape(f"{self.current_id}{values}"))
        if self.best:
            table.add_row("[bold green]best[/]", escape(f"trial {self.best['trial']}: {self.objective}="
                                                      f"{fmt(self.best['objective'])}  {self.best['values']}"))
        return Group(self.progress, table)

    def __enter__(self) -> "SearchView":
        if self.live_mode:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()
            self.live = None

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def trial_begin(self, trial_id: str, values: Mapping[str, Any], epochs: int) -> None:
        """A trial starts; trials that start together (search.fuse) are shown together."""
        self.started[str(trial_id)] = dict(values)
        if len(self.started) == 1:
            self.current_id, self.current = trial_id, dict(values)
        else:
            self.current_id, self.current = ", ".join(self.started) + " (fused)", {}
        self.progress.reset(self.epoch_task, total=epochs, visible=True, info="")
        self._refresh()

    def running(self, trials: Mapping[str, Any]) -> None:
        """Distributed mode: the trials the workers run now ({trial_id: (tuner_id, values)})."""
        if not trials:
            self.current_id, self.current = "", {}
        else:
            self.current_id = ", ".join(f"{tid} [{tuner}]" for tid, (tuner, _) in sorted(trials.items()))
            self.current = next(iter(trials.values()))[1] if len(trials) == 1 else {}
        self._refresh()

    def epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        self.progress.update(self.epoch_task, completed=epoch + 1, info=short_metrics(logs, keep=4))
        self._refresh()

    def trial_end(self, row: Mapping[str, Any], done: int) -> None:
        self.started = {k: v for k, v in self.started.items() if table_id(k) != table_id(row["trial"])}
        self.progress.update(self.trials_task, completed=done)
        value = row.get("objective")
        if row.get("status") == "completed" and value is not None and value == value:
            better = self.best is None or (value > self.best["objective"] if self.direction == "max"
                                           else value < self.best["objective"])
            if better:
                self.best = {"trial": row["trial"], "objective": value, "values": values_text(row["values"])}
        if self.enabled and not self.live_mode:
            total = f"/{self.total}" if self.total else ""
            reason = f" ({row['failure_reason']})" if row.get("failure_reason") else ""
            self.console.print(escape(f"trial {row['trial']} [{done}{total}] {row['status']}{reason}: "
                                      f"{self.objective}={fmt(value) if value is not None else '-'}  "
                                      f"{values_text(row['values'])}"), soft_wrap=True)
        self._refresh()

    def keras_callback(self) -> Any:
        import keras

        view = self

        class LiveEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
                view.epoch_end(epoch, logs or {})

        return LiveEpochs()
