"""What dlrun gives Hydra's -m sweepers: each job's objective (the value of
optimized_metric, or a failed objective the sweeper records as a failed trial),
and at the end the summary of the sweep: one row per job (the overrides that vary,
status, the optimized metric, test metrics, epochs, fit time, run folder), written
as summary.csv and summary.md in the sweep folder and shown ranked at the terminal.

A Hydra callback (conf/train.yaml, hydra.callbacks.sweep_summary) runs it once all
jobs are done, whatever the sweeper (basic, optuna, ...) or launcher (submitit: in
the submitting process, from the job folders). It only reads what the jobs wrote, so
it imports nothing heavy until a sweep ends."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

from hydra.experimental.callback import Callback

SHOWN = 10  # rows of the ranked table at the terminal (the files hold every job)


# ----------------------------------------------------------------- a job's objective
class FailedObjective:
    """What a failed job returns to Hydra's Optuna sweeper instead of NaN. hydra-optuna-sweeper
    1.3.0 hands a NaN to optuna's tell a second time and that error ends the whole sweep
    (facebookresearch/hydra#2237); a value that is not a number is recorded as a failed
    trial ("Return value must be float-castable. Got 'failed run: ...'") and the sweep goes on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __float__(self) -> float:
        raise ValueError(self.reason)

    def __repr__(self) -> str:
        return f"failed run: {self.reason}"


def sweeper_name() -> Optional[str]:
    """The -m sweeper of the running job (basic, optuna, nevergrad, ax, ...), or None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().runtime.choices.get("hydra/sweeper") or "basic"


def failed_objective(reason: str) -> Any:
    """A failed job's return value: NaN, which Nevergrad and Ax take as the worst value
    (Optuna: a FailedObjective, see there). The sweep goes on."""
    return FailedObjective(reason) if sweeper_name() == "optuna" else float("nan")


def metric_value(metrics: Dict[str, Any], name: str) -> Optional[float]:
    """The value of `name` (<split>_<metric>, e.g. val_loss) in a run's metrics.json, or None."""
    split, _, metric = name.partition("_")
    value = metrics.get(split, {}).get(metric)
    return None if value is None else float(value)


def objective(name: str, status: str, metrics: Dict[str, Any]) -> Any:
    """What a job returns to the sweeper: the value of `name`, or a failed objective."""
    value = metric_value(metrics, name) if status == "completed" else None
    if value is None or value != value:
        return failed_objective(metrics.get("failure_reason") or f"{name} is {value}")
    return value


# ----------------------------------------------------------------- the summary


class SweepSummary(Callback):
    """Hydra callback: after a -m sweep, summarize its jobs (see summarize)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from dlrun.display import warn

        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            metric = str(OmegaConf.select(config, "optimized_metric", default="val_loss"))
            frame = summarize(sweep_dir, metric)
            if frame is not None:
                show(frame, sweep_dir, metric, sweeper_direction(config) or metric_direction(metric))
        except Exception as err:  # noqa: BLE001 - a summary must never fail the sweep it describes
            warn(f"no sweep summary: {type(err).__name__}: {err}")


def metric_direction(metric: str) -> str:
    """'max' for accuracy-like names, else 'min' (losses and errors), as dlrun tune decides."""
    from dlrun.search.config import MAXIMIZE_HINTS  # the one list of better-large names

    return "max" if any(hint in metric.lower() for hint in MAXIMIZE_HINTS) else "min"


def direction_note(config: Any) -> Optional[str]:
    """A warning when the sweeper optimizes optimized_metric the wrong way round
    (Optuna minimizes by default; val_accuracy wants maximize), else None."""
    from omegaconf import OmegaConf

    metric = OmegaConf.select(config, "optimized_metric", default=None)
    direction = sweeper_direction(config)
    if not isinstance(metric, str) or direction is None or direction == metric_direction(metric):
        return None
    want = {"max": "maximize", "min": "minimize"}[metric_direction(metric)]
    return (f"optimized_metric={metric} is better when {'higher' if want == 'maximize' else 'lower'}, but the "
            f"sweeper {direction}imizes it; set its direction (Optuna: hydra.sweeper.direction={want})")


def sweeper_direction(config: Any) -> Optional[str]:
    """'min' or 'max' as the sweeper optimizes (Optuna, Nevergrad, Ax), or None (basic)."""
    from omegaconf import OmegaConf

    def pick(key: str) -> Any:
        try:
            return OmegaConf.select(config, key)
        except Exception:  # noqa: BLE001 - an unresolvable value says nothing
            return None

    direction = pick("hydra.sweeper.direction")  # optuna: minimize | maximize (or a list: several objectives)
    if isinstance(direction, str) or hasattr(direction, "name"):
        return "max" if "max" in str(getattr(direction, "name", direction)).lower() else "min"
    maximize = pick("hydra.sweeper.optim.maximize")  # nevergrad
    if isinstance(maximize, bool):
        return "max" if maximize else "min"
    minimize = pick("hydra.sweeper.ax_config.experiment.minimize")  # ax
    if isinstance(minimize, bool):
        return "min" if minimize else "max"
    return None


def _read_yaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _job(job_dir: Path, metric: str) -> Dict[str, Any]:
    """One job's row (before the overrides are spread into columns)."""
    hydra_dir = job_dir / ".hydra"
    overrides = [str(o) for o in (_read_yaml(hydra_dir / "overrides.yaml") or [])]
    try:
        num = int(_read_yaml(hydra_dir / "hydra.yaml")["hydra"]["job"]["num"])
    except Exception:  # noqa: BLE001 - a job folder named by its number, as Hydra's default
        num = int(job_dir.name) if job_dir.name.isdigit() else -1
    row: Dict[str, Any] = {"job": num, "overrides": overrides}
    path = job_dir / "metrics.json"
    if not path.exists():
        error = job_dir / "error.txt"  # written by the CLI when a job stops on an error of ours
        reason = error.read_text(encoding="utf-8").strip() if error.exists() else "stopped before training"
        row.update(status="error", failure_reason=reason)
        row[metric] = math.nan
        return row
    m = json.loads(path.read_text(encoding="utf-8"))
    value = metric_value(m, metric)
    row.update(status=m.get("status"), **{metric: math.nan if value is None else value})
    row.update({f"test_{k}": v for k, v in m.get("test", {}).items() if f"test_{k}" != metric})
    row.update(epochs=m.get("epochs_run"), fit_time_s=m.get("fit_time_s"), failure_reason=m.get("failure_reason"))
    return row


def _split(item: str) -> tuple:
    key, _, value = item.partition("=")
    return key, value


def summarize(sweep_dir: Path, metric: str):
    """The summary frame of the jobs under `sweep_dir` (ordered by job number), also
    written to summary.csv and summary.md there; None when no job ran `dlrun train`."""
    import pandas as pd

    from dlrun.results.tables import write_table

    job_dirs = sorted({p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")})
    rows = [_job(d, metric) | {"run_dir": str(d.absolute())} for d in job_dirs]
    if not any((d / "metrics.json").exists() for d in job_dirs):
        return None  # not a train sweep (dlrun tune -m writes no metrics.json)
    values: Dict[str, set] = {}
    for row in rows:
        for key, value in map(_split, row["overrides"]):
            values.setdefault(key, set()).add(value)
    varying = [k for k, v in values.items() if len(rows) == 1 or len(v) > 1
               or any(k not in dict(map(_split, r["overrides"])) for r in rows)]
    table = []
    for row in rows:
        given = dict(map(_split, row.pop("overrides")))
        table.append({"job": row.pop("job"), **{k: given.get(k) for k in varying}, **row})
    frame = pd.DataFrame(table).sort_values("job", kind="stable").reset_index(drop=True)
    first = ["job", *varying, "status", metric]
    tests = [c for c in frame.columns if c.startswith("test_") and c not in first]
    last = [c for c in ("epochs", "fit_time_s", "run_dir", "failure_reason") if c in frame.columns]
    frame = frame[[*first, *tests, *last]].copy()
    if "epochs" in frame:
        frame["epochs"] = frame["epochs"].astype("Int64")  # stays whole where a job has none
    write_table(frame, sweep_dir / "summary", ("csv", "md"))
    return frame


def _short(value: str) -> str:
    """An override's value for the terminal: a sampled 0.033482547632273554 as 0.0335."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if len(value) <= 6 or number.is_integer() else f"{number:.3g}"


def ranked(frame, metric: str, direction: str):
    """Completed jobs best first by `metric`, then the others (failed, missing values)."""
    ok = frame[(frame["status"] == "completed") & frame[metric].notna()]
    ok = ok.sort_values(metric, ascending=direction != "max", kind="stable")
    return ok, frame.drop(ok.index)


def show(frame, sweep_dir: Path, metric: str, direction: str) -> None:
    """A short table at the terminal: the jobs ranked by `metric`."""
    import pandas as pd
    from rich.markup import escape
    from rich.table import Table

    from dlrun.display import console, fmt

    good, rest = ranked(frame, metric, direction)
    varying = list(frame.columns[1:frame.columns.get_loc("status")])
    better = "higher" if direction == "max" else "lower"
    table = Table(title=f"Sweep: {len(frame)} jobs, ranked by {metric} ({better} is better)", title_justify="left")
    for name in ("job", "overrides", "status", metric, "epochs", "fit s"):  # best first: the rows are the ranking
        table.add_column(name, justify="left" if name in ("overrides", "status") else "right",
                         overflow="fold" if name == "overrides" else "ellipsis")
    records = [*good.to_dict("records"), *rest.to_dict("records")]
    for row in records[:SHOWN]:
        given = " ".join(f"{k}={_short(row[k])}" for k in varying if isinstance(row[k], str))
        epochs, fit = row.get("epochs"), row.get("fit_time_s")
        table.add_row(str(row["job"]), escape(given), str(row["status"]),
                      fmt(float(row[metric])), "" if pd.isna(epochs) else str(int(epochs)),
                      "" if pd.isna(fit) else f"{fit:.1f}")
    out = console()
    out.print(table)
    if len(records) > SHOWN:
        out.print(f"... {len(records) - SHOWN} more jobs in summary.csv")
    out.print(f"sweep summary: [bold]{sweep_dir / 'summary.csv'}[/], summary.md", soft_wrap=True)
