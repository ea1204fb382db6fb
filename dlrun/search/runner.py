"""`tune`: run a keras-tuner search from a validated TuneConfig and write what a
researcher needs: the trials table (CSV, Markdown, Parquet, rewritten after every
trial), the best config as YAML that `dlrun train` re-runs, the best model refit
on train+validation and scored on test, and plots.

Running it again on the same folder resumes: keras-tuner reloads its oracle,
finished trials are kept and the interrupted one is run again."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd

from dlrun.errors import DlrunError
from dlrun.preflight import metric_names, preflight
from dlrun.results import registry, rundir
from dlrun.results.tables import write_table
from dlrun.search import distributed
from dlrun.search.config import TuneConfig, check_objective, planned_trials
from dlrun.search.display import table_id
from dlrun.search.distributed import read_failure
from dlrun.search.fused import read_fused
from dlrun.diagnostics.trials import read_verdict
from dlrun.search.space import tidy

TUNER_DIR = "tuner"       # keras-tuner's own state (oracle, trials, checkpoints)
PROJECT = "search"        # keras-tuner's project folder inside TUNER_DIR
STATE_FILE = "search.json"  # what this search is: compared on resume
TRIAL_FORMATS = ("csv", "md", "parquet")
STATUS = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed", "RUNNING": "running",
          "IDLE": "pending", "STOPPED": "stopped"}
EXTRA_METRICS = ("best_epoch", "epochs_run", "params", "duration_s")
RUN_SETTINGS = ("overwrite", "refit", "workers", "worker_threads", "host", "port", "fuse")


class ResumeError(DlrunError):
    """The folder holds a different search; resuming it would mix results."""


@dataclass
class SearchResult:
    run_dir: Path
    status: str                        # completed | stopped | interrupted
    trials: pd.DataFrame
    best: Optional[Dict[str, Any]]     # the best trial: id, objective, values, refit scores
    message: str = ""


# ----------------------------------------------------------------- state
def search_state(tune: TuneConfig) -> Dict[str, Any]:
    base = dataclasses.asdict(tune.run)
    versions = rundir.versions()
    return {
        # How a search is run (workers, address, refit, overwrite) is not what it searches.
        "search": dataclasses.asdict(tune.search) | dict.fromkeys(RUN_SETTINGS),
        "space": tune.space.to_dict(),
        "base_config": {k: v for k, v in base.items() if k not in ("name", "optimized_metric")},  # -m sweeps only
        "versions": {k: versions.get(k) for k in ("tensorflow", "keras", "keras-tuner")},
    }


def search_hash(tune: TuneConfig) -> str:
    """The config hash of a search: its base config, algorithm settings and space
    (not its seeds, nor how it is run), as rundir.config_hash does for a run."""
    state = json.loads(json.dumps(search_state(tune), default=str))
    return rundir.config_hash({**state["base_config"], "search": {**state["search"], "seed": None},
                               "space": state["space"]})


def _differences(old: Any, new: Any, prefix: str = "") -> List[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: List[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def prepare_folder(run_dir: Path, tune: TuneConfig) -> bool:
    """Start afresh or check that the folder holds this same search. Returns True when resuming."""
    state_path = run_dir / STATE_FILE
    state = json.loads(json.dumps(search_state(tune), default=str))
    if tune.search.overwrite:
        shutil.rmtree(run_dir / TUNER_DIR, ignore_errors=True)
        for name in [f"trials.{f}" for f in TRIAL_FORMATS] + ["best.yaml", "best_metrics.json", "best_model.keras"]:
            (run_dir / name).unlink(missing_ok=True)
    elif state_path.exists():
        old = json.loads(state_path.read_text())
        changed = _differences(old, state)
        then, installed = old.get("versions") or {}, state["versions"]
        versions = [f"{name} {then.get(name)} (search) vs {installed.get(name)} (installed)"
                    for name in sorted(set(then) | set(installed)) if then.get(name) != installed.get(name)]
        if versions:
            raise ResumeError(f"{run_dir} holds a search made with other library versions: {'; '.join(versions)}. "
                              "Resuming would mix results: install those versions, use search.overwrite=true "
                              "to start afresh, or choose another hydra.run.dir")
        if changed:
            raise ResumeError(f"{run_dir} holds a different search; changed: {'; '.join(changed[:4])}"
                              + (f" (and {len(changed) - 4} more)" if len(changed) > 4 else "")
                              + ". Use search.overwrite=true to start afresh, or another hydra.run.dir")
        return (run_dir / TUNER_DIR).exists()
    rundir.write_json(state_path, state)
    return False


# ----------------------------------------------------------------- tables
def trial_rows(oracle: Any, objective: str, keys: List[str], running_status: str = "running",
               trials_dir: Optional[Path] = None) -> pd.DataFrame:
    """One row per trial: id, status, every active hyperparameter, objective, best
    epoch, final metrics, duration, parameter count, failure reason (from keras-tuner,
    or from a worker's note under `trials_dir` in distributed mode)."""
    rows = []
    for trial_id in sorted(list(oracle.trials), key=lambda t: (isinstance(table_id(t), str), table_id(t))):
        trial = oracle.trials[trial_id]
        status = STATUS.get(str(trial.status), str(trial.status).lower())
        if status == "running":
            status = running_status
        row: Dict[str, Any] = {"trial": table_id(trial_id), "status": status}
        values = trial.hyperparameters.values
        row.update({key: tidy(values.get(key)) for key in keys})  # inactive ones stay empty
        if "tuner/epochs" in values:
            row["epochs_budget"] = values["tuner/epochs"]
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        row["objective"] = metrics.get(objective)
        for name in EXTRA_METRICS:
            row[name] = metrics.pop(name, None)
        for name in sorted(metrics):
            row[name] = metrics[name]
        reason = None
        if status == "failed":
            reason = _reason(trial.message) or (read_failure(trial_dir(trials_dir, trial_id)) if trials_dir else None)
        row["failure_reason"] = reason
        row["verdict"] = read_verdict(trial_dir(trials_dir, trial_id)) if trials_dir else None
        row["fused_with"] = read_fused(trial_dir(trials_dir, trial_id)) if trials_dir else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "fused_with" in frame and frame["fused_with"].isna().all():
        frame = frame.drop(columns="fused_with")  # an unfused search's table is as it always was
    if not frame.empty:
        for col in ("best_epoch", "epochs_run", "params"):
            if col in frame:
                frame[col] = frame[col].astype("Int64")
    return frame


def trial_dir(trials_dir: Path, trial_id: Any) -> Path:
    """keras-tuner's folder of one trial (its trial.json; dlrun's failure note)."""
    return Path(trials_dir) / f"trial_{trial_id}"


def _reason(message: Optional[str]) -> Optional[str]:
    """The last line of keras-tuner's traceback, without the exception class."""
    if not message:
        return None
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].endswith(("Error", "Exception")) else last


def write_trials(frame: pd.DataFrame, run_dir: Path) -> None:
    if not frame.empty:
        write_table(frame, run_dir / "trials", TRIAL_FORMATS)


# ----------------------------------------------------------------- best
def best_trial(frame: pd.DataFrame, direction: str) -> Optional[pd.Series]:
    done = frame[(frame["status"] == "completed") & frame["objective"].notna()] if not frame.empty else frame
    if done.empty:
        return None
    index = done["objective"].idxmax() if direction == "max" else done["objective"].idxmin()
    return done.loc[index]


def write_best_yaml(path: Path, run: Any, trial: pd.Series, objective: str, run_dir: Path) -> None:
    """A primary config that `dlrun train --config-dir RUN_DIR --config-name best` runs as is:
    dlrun's train config with every group set to the best trial's full values."""
    import yaml

    config = dataclasses.asdict(run)
    regularization = config.pop("regularization")
    overrides = [{f"override /{group}": config[group]["name"]} for group in ("data", "model", "optimizer",
                                                                           "schedule", "loss")]
    body = {"defaults": ["train", *overrides, {"override /regularization": "none"}, "_self_"],
            "name": f"{run.name}_best", **{k: v for k, v in config.items() if k != "name"},
            "regularization": {k: v for k, v in regularization.items() if v is not None}}
    header = (f"# Best trial {trial['trial']} of the search in {run_dir}: {objective} = {trial['objective']:.6g}\n"
              f"# Re-run: dlrun train --config-dir {run_dir} --config-name best\n")
    rundir.write_text(path, header + yaml.safe_dump(body, sort_keys=False))


def hp_values(trial: pd.Series, keys: List[str]) -> Dict[str, Any]:
    out = {}
    for key in keys:
        value = trial.get(key)
        if value is not None and not (isinstance(value, float) and value != value):
            out[key] = value.item() if hasattr(value, "item") else value
    return out


# ----------------------------------------------------------------- the search
def tune(tune: TuneConfig, run_dir: Path, listener: Optional[Any] = None) -> SearchResult:
    """Run the search into `run_dir` (resuming what is there), then refit and score the best.
    The folder is locked for the duration: a second search started there is refused.
    `listener`, if given, is called with each finished trial's table row."""
    run_dir = Path(run_dir)
    distributed.check_environment()
    bundle = preflight(tune.run)
    check_objective(tune.search, metric_names(tune.run, bundle.meta.task))
    rundir.make_dir(run_dir)
    if distributed.role() == "worker":  # a declared worker of a search: it shares the chief's folder
        return work(tune, run_dir, bundle)
    with rundir.run_lock(run_dir), registry.record("tune", run_dir, tune.run.name, search_hash(tune),
                                                   tune.search.seed, refused=(ResumeError,)) as entry:
        result = _tune_locked(tune, run_dir, bundle, listener)
        best = result.best or {}
        entry.finish(result.status, (best["objective"], best["value"]) if best else None, result.message or None)
        return result


def _tune_locked(tune: TuneConfig, run_dir: Path, bundle: Any, listener: Optional[Any]) -> SearchResult:
    from dlrun.display import console
    from dlrun.training import write_run_info

    resuming = prepare_folder(run_dir, tune)
    write_run_info(run_dir, tune.run)
    out = console()
    total = planned_trials(tune)
    out.print(f"[bold]dlrun tune[/]: {tune.search.name} search, "
              f"{f'{total} trials' if total else 'trials sized by hyperband'}, objective "
              f"{tune.search.objective} ({tune.direction}), {len(tune.space.params)} hyperparameters"
              + (" [yellow](resuming)[/]" if resuming else ""))
    out.print(f"results and resume folder: [bold]{run_dir}[/] (rerun with hydra.run.dir={run_dir} to resume)",
              soft_wrap=True)
    chief = None
    if tune.search.workers or distributed.role() == "chief":
        chief = _launch(tune, run_dir, bundle)  # the workers start up while this process builds the oracle
    try:
        result = _search(tune, run_dir, bundle, listener, chief)
    except BaseException:
        if chief is not None:
            chief.stop(grace=0)  # no worker outlives a failed or interrupted chief
        raise
    if chief is not None:
        chief.stop()  # the workers were told to exit while the best trial was refit
    return result


def _search(tune: TuneConfig, run_dir: Path, bundle: Any, listener: Optional[Any],
            chief: Optional[distributed.Chief]) -> SearchResult:
    from dlrun.display import console
    from dlrun.training import setup_runtime

    out = console()
    total = planned_trials(tune)
    setup_runtime(tune.run.trainer)
    from dlrun.search.display import SearchView
    from dlrun.search.hypermodel import DlrunHyperModel
    from dlrun.search.tuners import make_tuner

    objective = tune.search.objective
    keys = tune.space.keys()
    view = SearchView(total, objective, tune.direction, enabled=tune.run.trainer.verbose > 0)
    hypermodel = DlrunHyperModel(tune, bundle, epoch_callback=view.keras_callback(), run_dir=run_dir)
    trials_dir = run_dir / TUNER_DIR / PROJECT

    def on_begin(trial: Any) -> None:
        values = trial.hyperparameters.values
        view.trial_begin(trial.trial_id, values, int(values.get("tuner/epochs", tune.run.trainer.epochs)))

    def on_end(trial: Any) -> None:
        frame = trial_rows(tuner.oracle, objective, keys, trials_dir=trials_dir)
        write_trials(frame, run_dir)
        report_trial(frame, trial, view, listener, tuner.oracle)

    tuner = make_tuner(tune, hypermodel, str(run_dir / TUNER_DIR), overwrite=tune.search.overwrite,
                       on_trial_begin=on_begin, on_trial_end=on_end)
    status, message = "completed", ""
    started = time.perf_counter()
    try:
        with view:
            if chief is not None:
                status, message = _serve(tune, chief, tuner.oracle, run_dir, view, listener)
            else:
                tuner.search(verbose=0)
    except KeyboardInterrupt:
        write_trials(trial_rows(tuner.oracle, objective, keys, "interrupted", trials_dir), run_dir)
        raise
    except RuntimeError as err:
        if "consecutive failures" not in str(err):
            raise
        status = "stopped"
        message = _stopped_message(tune, _reason(str(err)))
    frame = trial_rows(tuner.oracle, objective, keys, "interrupted", trials_dir)
    write_trials(frame, run_dir)
    best = finish(tune, bundle, frame, run_dir, out)
    plot_search(frame, tune, run_dir)
    summary = {"status": status, "message": message, "trials": int(len(frame)),
               "completed": int((frame["status"] == "completed").sum()) if not frame.empty else 0,
               "failed": int((frame["status"] == "failed").sum()) if not frame.empty else 0,
               "search_time_s": round(time.perf_counter() - started, 3), "best": best}
    rundir.write_json(run_dir / "search_summary.json", summary)
    return SearchResult(run_dir=run_dir, status=status, trials=frame, best=best, message=message)


def _stopped_message(tune: TuneConfig, reason: Optional[str]) -> str:
    return (f"search stopped: {tune.search.max_consecutive_failures} trials failed in a row "
            f"(search.max_consecutive_failures); last reason: {reason or 'unknown'}")


def _failed_in_a_row(oracle: Any) -> int:
    """Trials failed in a row at the end of the order in which trials ended."""
    count = 0
    for trial_id in reversed(list(oracle.end_order)):
        if str(oracle.trials[trial_id].status) != "FAILED":
            break
        count += 1
    return count


def _row(frame: pd.DataFrame, trial_id: Any) -> pd.Series:
    """The trials-table row of `trial_id` (keras-tuner's ids are zero-padded: '03')."""
    return frame[frame["trial"].astype(str) == str(table_id(trial_id))].iloc[0]


def report_trial(frame: pd.DataFrame, trial: Any, view: Any, listener: Optional[Any], oracle: Any) -> None:
    """Show one ended trial in the live view, with how many trials had ended with it (a
    fused group's trials are all finished before the first is ended: the table alone
    would count them all), and hand its row to `listener`."""
    row = _row(frame, trial.trial_id).to_dict()
    hp_keys = [k for k in trial.hyperparameters.values if not k.startswith("tuner/")]
    row["values"] = {k: row[k] for k in hp_keys if k in row}
    order = list(oracle.end_order)
    done = order.index(trial.trial_id) + 1 if trial.trial_id in order else \
        int(frame["status"].isin(["completed", "failed"]).sum())
    view.trial_end(row, done)
    if listener is not None:  # e.g. benchmarks/bench_memory.py
        listener(row)


def _launch(tune: TuneConfig, run_dir: Path, bundle: Any) -> distributed.Chief:
    """Choose the chief's address and start the local workers (search.workers), handing
    them this validated search and its prepared data."""
    import pickle

    from dlrun.display import console

    if distributed.role() == "chief":
        host, port = os.environ[distributed.ENV_IP], int(os.environ[distributed.ENV_PORT])
    else:
        host, port = tune.search.host, tune.search.port or distributed.free_port(tune.search.host)
    chief = distributed.Chief(host, port)
    workers = tune.search.workers
    threads = (tune.search.worker_threads or distributed.threads_per_worker(workers)) if workers else 0
    if workers:
        state = run_dir / distributed.WORKER_DIR / distributed.WORKER_STATE
        with rundir.atomic_path(state) as tmp:
            tmp.write_bytes(pickle.dumps((tune, bundle), protocol=pickle.HIGHEST_PROTOCOL))
        chief.spawn(workers, state, threads)
    console().print(f"{distributed.describe(workers, host, port)}"
                    + (f"; {threads} thread(s) each, logs in {run_dir / distributed.WORKER_DIR}" if workers else ""),
                    soft_wrap=True)
    return chief


def _serve(tune: TuneConfig, chief: distributed.Chief, oracle: Any, run_dir: Path, view: Any,
           listener: Optional[Any]) -> tuple:
    """The chief of a distributed search: serve the oracle to the workers (the local ones
    of search.workers=N, and any started elsewhere with keras-tuner's environment
    variables), rewrite the tables as trials end, and stop every worker at the end."""
    objective, keys = tune.search.objective, tune.space.keys()
    trials_dir = run_dir / TUNER_DIR / PROJECT
    limit = tune.search.max_consecutive_failures
    oracle.max_consecutive_failed_trials = None  # counted below: raised in the servicer, it kills a worker
    oracle.verbose = 0  # the live view reports trials; keras-tuner would print its own blocks
    chief.start(oracle)
    seen = set(oracle.end_order)  # ended before a resume: reported already
    status, message, left_cleanly = "completed", "", False
    try:
        while True:
            chief.fail_dead_workers_trials()
            finished = chief.finished  # before reading what ended, so that the last trials are reported
            ended = [t for t in list(oracle.end_order) if t not in seen]
            running = {t.trial_id: (tuner_id, dict(t.hyperparameters.values))
                       for tuner_id, t in list(oracle.ongoing_trials.items())}
            view.running(running)
            if ended:
                frame = trial_rows(oracle, objective, keys, trials_dir=trials_dir)
                write_trials(frame, run_dir)
                for trial_id in ended:
                    seen.add(trial_id)
                    report_trial(frame, oracle.trials[trial_id], view, listener, oracle)
                if _failed_in_a_row(oracle) >= limit:
                    reason = _row(frame, ended[-1]).get("failure_reason")
                    status, message = "stopped", _stopped_message(tune, reason)
                    break
            if finished:
                break
            if chief.all_workers_gone() and distributed.role() != "chief":
                status = "stopped"
                message = (f"search stopped: every worker exited before the search ended; see the logs in "
                           f"{run_dir / distributed.WORKER_DIR}")
                break
            time.sleep(0.2)
        left_cleanly = True
    finally:
        if not left_cleanly or status != "completed":
            chief.stop(grace=0)  # stop the workers' running trials now
    return status, message


def work(tune: TuneConfig, run_dir: Path, bundle: Any) -> SearchResult:
    """A worker of a distributed search: ask the chief for trials and train them with the
    same hypermodel as an in-process search; the chief writes every table."""
    from dlrun.display import console
    from dlrun.training import setup_runtime

    distributed.watch_chief()
    setup_runtime(tune.run.trainer)  # first: TensorFlow is imported quietly, with this worker's threads
    from dlrun.search.display import values_text
    from dlrun.search.hypermodel import DlrunHyperModel
    from dlrun.search.tuners import make_tuner
    out = console()
    me = os.environ.get(distributed.ENV_ID, "worker")
    out.print(f"{me}: ready, {tune.run.trainer.threads or 'all'} CPU thread(s); asking the chief for trials")
    trials_dir = run_dir / TUNER_DIR / PROJECT
    count = {"trials": 0}

    def on_begin(trial: Any) -> None:
        out.print(f"{me}: trial {trial.trial_id} started: {values_text(trial.hyperparameters.values)}", soft_wrap=True)

    def before_end(trial: Any) -> None:  # keras-tuner's protocol carries no failure message
        if str(trial.status) == "FAILED" and trial.message:
            rundir.write_text(distributed.failure_path(trial_dir(trials_dir, trial.trial_id)),
                              _reason(trial.message) or "")

    def on_end(trial: Any) -> None:
        count["trials"] += 1
        out.print(f"{me}: trial {trial.trial_id} {STATUS.get(str(trial.status), trial.status)}", soft_wrap=True)

    tuner = make_tuner(tune, DlrunHyperModel(tune, bundle, run_dir=run_dir), str(run_dir / TUNER_DIR), overwrite=False,
                       on_trial_begin=on_begin, before_trial_end=before_end, on_trial_end=on_end)
    tuner.search(verbose=0)
    message = f"{me}: the chief has no more trials; this worker ran {count['trials']}"
    return SearchResult(run_dir=run_dir, status="worker", trials=pd.DataFrame(), best=None, message=message)


def finish(tune: TuneConfig, bundle: Any, frame: pd.DataFrame, run_dir: Path, out: Any) -> Optional[Dict[str, Any]]:
    """best.yaml and, unless search.refit=false, the best config refit on train+validation
    and scored on test (best_metrics.json, best_model.keras)."""
    from dlrun.training import refit, save_model, save_preprocessing

    trial = best_trial(frame, tune.direction)
    if trial is None:
        return None
    keys = [p.key for p in tune.space.params]
    values = hp_values(trial, keys)
    run = tune.trial_config(values)
    write_best_yaml(run_dir / "best.yaml", run, trial, tune.search.objective, run_dir)
    best: Dict[str, Any] = {"trial": int(trial["trial"]), "objective": tune.search.objective,
                            "value": float(trial["objective"]), "direction": tune.direction,
                            "hyperparameters": values}
    if tune.search.refit:
        epochs = int(trial["best_epoch"]) if pd.notna(trial.get("best_epoch")) else run.trainer.epochs
        out.print(f"refitting trial {best['trial']} on train+validation for {epochs} epochs ...")
        model, scores = refit(run, bundle, epochs)
        best["refit"] = {"epochs": epochs, "train": scores["train"], "test": scores["test"]}
        save_model(model, run_dir / "best_model.keras")
        save_preprocessing(run_dir, run, bundle, None)
    rundir.write_json(run_dir / "best_metrics.json", best)
    return best


def plot_search(frame: pd.DataFrame, tune: TuneConfig, run_dir: Path) -> None:
    from dlrun.results.plots import objective_by_trial, objective_vs_params

    done = frame[frame["status"] == "completed"] if not frame.empty else frame
    if done.empty:
        return
    objective = tune.search.objective
    objective_by_trial(done, objective, tune.direction, run_dir / "objective_by_trial.png")
    params = [p for p in tune.space.params if p.key in done.columns]
    objective_vs_params(done, objective, [(p.key, p.sampling == "log") for p in params],
                        run_dir / "objective_vs_hyperparameters.png")
