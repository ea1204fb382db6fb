"""Diagnostics for one fit: the statistics callback on a fixed batch of training rows
(`watch`), the facts the rules need (`run_facts`), and, after training, gradients.csv,
gradients.png and the verdict (`record_diagnosis`). `dlrun train` and every search
trial call the same functions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pandas as pd

from dlrun.config.schema import RunConfig
from dlrun.data import DataBundle
from dlrun.diagnostics.rules import Diagnosis, RunFacts, diagnose

PROGRESS_METRICS = ("auc", "accuracy", "mae", "r2")  # judged for progress from chance, in this order of preference


def watch(run: RunConfig, model: Any, bundle: DataBundle, loss_name: str) -> Optional[Any]:
    """The statistics callback for this fit, or None when neither the diagnostics nor a
    logger that shows them is on."""
    histograms = run.logger.name == "tensorboard" and run.logger.histogram_freq > 0
    if not (run.diagnostics.enabled or run.logger.name == "tensorboard"):
        return None
    from dlrun.diagnostics.statistics import gradient_statistics
    from dlrun.training import targets

    rows = probe_rows(run, bundle)
    x = bundle.x_train[:rows]
    y = targets(bundle.y_train[:rows], bundle.meta, loss_name)
    return gradient_statistics(model, x, y, keep_gradients=histograms)


def probe_rows(run: RunConfig, bundle: DataBundle) -> int:
    """How many training rows the fixed batch holds: diagnostics.batch_rows, or all of them."""
    return min(run.diagnostics.batch_rows, len(bundle.x_train))


def chance_level(metric: str, bundle: DataBundle) -> Optional[float]:
    """The validation value of `metric` for a model that ignores the features."""
    from dlrun.classification import majority_baseline, mean_baseline

    if metric == "auc":
        return 0.5
    if metric == "r2":
        return 0.0
    if metric == "accuracy" and bundle.meta.task != "regression":
        return majority_baseline(bundle.y_train, bundle.y_val, bundle.meta.classes)["majority_rate"]
    if metric == "mae" and bundle.meta.task == "regression":
        return mean_baseline(bundle.y_train, bundle.y_val)["mae"]
    return None


def progress_metric(run: RunConfig, task: str) -> Optional[str]:
    from dlrun.preflight import metric_names

    names = metric_names(run, task)
    return next((m for m in PROGRESS_METRICS if m in names), None)


def run_facts(run: RunConfig, bundle: DataBundle, restored_best: bool, probe_rows: int) -> RunFacts:
    from dlrun.models import resolved_initializer

    from dlrun.results.sweep import metric_direction

    task = bundle.meta.task
    metric = progress_metric(run, task)
    higher = metric is not None and metric_direction(metric) == "max"
    reg = run.regularization
    sections = tuple(name for name in ("kernel", "dropout", "batchnorm", "noise", "early_stopping")
                     if getattr(reg, name) is not None)
    return RunFacts(task=task, metric=metric, higher_is_better=higher,
                    chance=chance_level(metric, bundle) if metric else None,
                    perfect=1.0 if higher else 0.0,
                    activation=getattr(run.model, "activation", "relu"),
                    initializer=resolved_initializer(getattr(run.model, "initializer", "auto"), task),
                    model=run.model.name, units=tuple(getattr(run.model, "units", ()) or ()),
                    learning_rate=float(run.optimizer.learning_rate), clipnorm=run.optimizer.clipnorm,
                    batch_size=run.trainer.batch_size, train_rows=len(bundle.x_train),
                    regularization=sections, restored_best=restored_best, probe_rows=probe_rows)


def ended_on_best(run: RunConfig, history: pd.DataFrame, kept: Dict[str, Any]) -> bool:
    """Whether the weights the run ends with are its best epoch's: keep_best, or early
    stopping that stopped early and restored them."""
    if kept.get("kept_best_epoch") is not None:
        return True
    es = run.regularization.early_stopping
    return bool(es and es.restore_best_weights and len(history) < run.trainer.epochs)


def diagnose_fit(run: RunConfig, bundle: DataBundle, stats: pd.DataFrame, history: pd.DataFrame,
                 kept: Optional[Dict[str, Any]] = None) -> Diagnosis:
    """The verdict of one fit from its statistics frame and history."""
    facts = run_facts(run, bundle, ended_on_best(run, history, kept or {}), probe_rows(run, bundle))
    return diagnose(stats, history, facts, run.diagnostics.rules)


def record_diagnosis(run: RunConfig, bundle: DataBundle, statistics: Any, history: pd.DataFrame,
                     metrics: Dict[str, Any], run_dir: Path, title: str) -> Dict[str, Any]:
    """Write gradients.csv and gradients.png; return what metrics.json gets (verdict,
    findings, the seconds the statistics took)."""
    from dlrun.diagnostics.plots import gradient_plot
    from dlrun.results.tables import write_table

    stats = statistics.frame()
    if not stats.empty:
        write_table(stats, Path(run_dir) / "gradients", ("csv",))
        gradient_plot(stats, Path(run_dir) / "gradients.png", title=title)
    out: Dict[str, Any] = {"diagnostics_time_s": round(float(getattr(statistics, "seconds", 0.0)), 3)}
    if run.diagnostics.enabled:
        out.update(diagnose_fit(run, bundle, stats, history, metrics).as_dict())
    return out
