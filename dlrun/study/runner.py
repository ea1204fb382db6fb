"""`compare`: run a study (contenders x seeds, each an ordinary run through
`dlrun.training.train`, in this process on data prepared once), then read the run
folders back into runs.csv and comparison.csv/.md/.parquet, plots and a ranked table.

Run again with the same study folder, it keeps every finished run (same config hash)
and trains only the rest. Ctrl-C leaves a valid partial comparison of what finished.
A run that fails (diverges, or raises) is a result: its contender is reported as
failed with the reason and the study goes on."""
from __future__ import annotations

import contextlib
import math
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from dlrun.results import rundir
from dlrun.results.rundir import read_record
from dlrun.study import folder as study_folder
from dlrun.study.plan import PlannedRun, Study, bundle_for, final_runs, forget_data, lr_runs, seeds
from dlrun.study.progress import StudyProgress
from dlrun.study.comparison import split_metric
from dlrun.study.readback import read_run

FINISHED = ("completed", "failed")  # what a rerun keeps (a diverged run diverges again)
FUSED_TIMES = ("study.fuse: a fused run's seconds (fit_time_s, seconds to target, the curves against time) are its "
               "group's; compare training times with study.fuse=1")


@dataclass
class StudyResult:
    study_dir: Path
    status: str                        # completed | interrupted
    comparison: pd.DataFrame
    runs: pd.DataFrame
    files: List[Path]
    kept: int = 0                      # finished runs kept from an earlier start
    trained: int = 0


@dataclass
class Session:
    study: Study
    study_dir: Path
    view: StudyProgress
    done: List[Dict[str, Any]] = field(default_factory=list)   # one entry per run, in run order
    kept: int = 0
    trained: int = 0
    fuse_size: Optional[int] = None    # study.fuse as a number, sized once (auto builds a model to size it)

    # -------------------------------------------------------------- running
    def run_all(self) -> None:
        study = self.study
        chosen: Dict[str, Optional[float]] = {c.name: None for c in study.contenders}
        if study.settings.tune_lr:
            grid = self.execute_all([(p, c.chosen) for c in study.contenders for p in lr_runs(study, c)])
            for contender in study.contenders:
                chosen[contender.name] = self.best_rate([e for e in grid if e["planned"].contender == contender.name])
        for seed in seeds(study):  # seed-major: stopped early, every contender has its first runs
            runs = []
            for contender in study.contenders:
                if study.settings.tune_lr and chosen[contender.name] is None:
                    if contender.chosen:
                        self.skip(contender.name, seed, "every learning rate of study.lr_grid failed")
                    continue
                runs.append((next(p for p in final_runs(study, contender, chosen[contender.name]) if p.seed == seed),
                             contender.chosen))
            self.execute_all(runs)

    def execute_all(self, runs: List[Tuple[PlannedRun, bool]]) -> List[Dict[str, Any]]:
        """`execute` each (planned run, chosen); with study.fuse, the runs that must train
        and can share a graph train as branches of one model (dlrun.study.fused). Returns
        the entries in the order given."""
        from dlrun.study.fused import group_size, plan_groups, run_key

        if self.study.settings.fuse == 1:
            return [self.execute(planned, chosen) for planned, chosen in runs]
        entries: List[Optional[Dict[str, Any]]] = [self.settle(planned, chosen) for planned, chosen in runs]
        waiting = [i for i, entry in enumerate(entries) if entry is None]
        if len(waiting) > 1 and self.fuse_size is None:
            self.fuse_size = group_size(self.study.settings.fuse, runs[waiting[0]][0].run)
        if waiting:
            for group in plan_groups([run_key(runs[i][0].run) for i in waiting], self.fuse_size or 1):
                plans = [runs[waiting[j]][0] for j in group]
                trained = self.execute_fused(plans) if len(plans) > 1 else [self.train_one(plans[0])]
                for j, entry in zip(group, trained):
                    entries[waiting[j]] = entry
        return [entry for entry in entries if entry is not None]

    def execute(self, planned: PlannedRun, chosen: bool = True) -> Dict[str, Any]:
        """Train one planned run, or keep it when an earlier start finished it."""
        entry = self.settle(planned, chosen)
        return entry if entry is not None else self.train_one(planned)

    def settle(self, planned: PlannedRun, chosen: bool = True) -> Optional[Dict[str, Any]]:
        """The entry of a run that needs no training (the lr grid ran it, an earlier start
        finished it, or study.only leaves its contender out, which keeps its finished runs
        and trains nothing), or None after clearing its folder for training."""
        run_dir = self.study_dir / planned.folder
        entry = {"planned": planned, "run_dir": run_dir, "status": None, "reason": None}
        same = self.same_run(planned)
        if same is not None:  # tune_lr: the grid's run at the chosen rate is this seed's run
            entry.update(run_dir=same["run_dir"], status=same["status"], reason=same["reason"])
            self.done.append(entry)
            if chosen:
                self.view.finished(planned, self.row(entry), how="the lr grid's run at this rate")
            return entry
        kept = self.keep(planned, run_dir) if chosen else self.finished_status(planned, run_dir)
        if kept is not None or not chosen:
            entry["status"] = kept or "pending"
            if chosen:
                self.kept += 1
                self.view.finished(planned, self.row(entry), how="kept")
            if kept is not None:
                self.done.append(entry)
            return entry
        return None

    def tags(self, planned: PlannedRun) -> Dict[str, Any]:
        return {"study": str(self.study_dir.resolve()), "contender": planned.contender, "phase": planned.phase}

    def train_one(self, planned: PlannedRun) -> Dict[str, Any]:
        """Train a run alone (its folder was cleared by `settle`)."""
        run_dir = self.study_dir / planned.folder
        entry = {"planned": planned, "run_dir": run_dir, "status": None, "reason": None}
        self.view.starting(planned)
        try:
            from dlrun.training import train

            result = train(planned.run, run_dir, bundle=bundle_for(planned.run), tags=self.tags(planned))
            entry.update(status=result.status, reason=result.metrics.get("failure_reason"))
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - a failing run is a result; the study goes on
            self.failed(entry, err)
        finally:
            clear_keras()
        self.trained += 1
        self.done.append(entry)
        self.view.finished(planned, self.row(entry))
        return entry

    def execute_fused(self, plans: List[PlannedRun]) -> List[Dict[str, Any]]:
        """Train `plans` as branches of one model; each run that fails, fails alone. When
        the fused fit itself fails, each run trains alone instead."""
        from dlrun.display import warn
        from dlrun.errors import first_line
        from dlrun.study.fused import train_fused

        entries = [{"planned": p, "run_dir": self.study_dir / p.folder, "status": None, "reason": None}
                   for p in plans]
        self.view.starting(*plans)
        try:
            items = [(p.run, e["run_dir"], self.tags(p), p.folder.as_posix()) for p, e in zip(plans, entries)]
            results = train_fused(items, bundle_for(plans[0].run))
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - the graph failed as a whole: each run alone, as unfused
            warn(f"{len(plans)} fused runs failed together ({first_line(err)}); training them one at a time")
            clear_keras()
            for p in plans:
                self.keep(p, self.study_dir / p.folder)  # the group's unfinished folders: cleared
            return [self.train_one(p) for p in plans]
        finally:
            clear_keras()
        for entry, result in zip(entries, results):
            if isinstance(result, BaseException):
                self.failed(entry, result)
            else:
                entry.update(status=result.status, reason=result.metrics.get("failure_reason"))
            self.trained += 1
            self.done.append(entry)
            self.view.finished(entry["planned"], self.row(entry), fused=len(plans) - 1)
        return entries

    @staticmethod
    def failed(entry: Dict[str, Any], err: BaseException) -> None:
        """A run that raised: failed, with the reason and its traceback in error.txt."""
        text = str(err).strip().splitlines()
        entry.update(status="failed", reason=f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": "))
        with contextlib.suppress(OSError, rundir.OutputError):
            rundir.write_text(entry["run_dir"] / "error.txt",
                              "".join(traceback.format_exception(type(err), err, err.__traceback__)))

    def same_run(self, planned: PlannedRun) -> Optional[Dict[str, Any]]:
        """The lr grid's run with the same config and seed as `planned`, if one ran."""
        for entry in self.done:
            other = entry["planned"]
            if other is not None and other.phase == "lr_search" and other.seed == planned.seed \
                    and other.config_hash == planned.config_hash:
                return entry
        return None

    @staticmethod
    def finished_status(planned: PlannedRun, run_dir: Path) -> Optional[str]:
        """The status of a run an earlier start finished in `run_dir` with this same config
        and seed, or None."""
        metrics = read_record(run_dir / "metrics.json")
        same = read_record(run_dir / "versions.json").get("config_hash") == planned.config_hash
        status = metrics.get("status")
        return status if same and status in FINISHED and metrics.get("seed") == planned.seed else None

    def keep(self, planned: PlannedRun, run_dir: Path) -> Optional[str]:
        """finished_status, or None after clearing the folder for the run (a finished run of
        another config is moved aside, never deleted)."""
        if not run_dir.exists():
            return None
        status = self.finished_status(planned, run_dir)
        if status is not None:
            return status
        if read_record(run_dir / "metrics.json").get("status") in FINISHED:
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"))
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted or crashed start: trained again
        return None

    def skip(self, contender: str, seed: int, reason: str) -> None:
        self.done.append({"planned": None, "contender": contender, "seed": seed, "status": "failed",
                          "reason": reason, "run_dir": None})
        self.view.advance()

    def best_rate(self, grid: List[Dict[str, Any]]) -> Optional[float]:
        """The learning rate whose run scored best on validation (study.metric's measure)."""
        from dlrun.study.statistics import maximize

        name = f"val_{split_metric(self.study.metric)[1]}"
        scored = [(row[name], entry["planned"].learning_rate) for entry in grid
                  for row in [self.row(entry)] if row["status"] == "completed" and _finite(row.get(name))]
        if not scored:
            return None
        pick = max if maximize(name) else min
        return pick(scored, key=lambda item: item[0])[1]

    # -------------------------------------------------------------- reading
    def row(self, entry: Dict[str, Any]) -> Dict[str, Any]:
        """The entry's row of runs.csv, read from its run folder once (a finished run's
        folder does not change); its history is kept beside it for the plots."""
        if "row" in entry:
            return entry["row"]
        planned: Optional[PlannedRun] = entry["planned"]
        if planned is None:
            entry["row"], entry["history"] = {"contender": entry["contender"], "seed": entry["seed"],
                                              "phase": "final", "status": entry["status"],
                                              "reason": entry["reason"], "run_dir": None}, None
            return entry["row"]
        row, entry["history"] = read_run(entry["run_dir"], self.study.metric, self.study.settings.target)
        row.update(contender=planned.contender, seed=planned.seed, phase=planned.phase,
                   learning_rate=planned.learning_rate)
        if entry["status"] == "failed" and entry["reason"] and not read_record(entry["run_dir"] / "metrics.json"):
            row.update(status="failed", reason=entry["reason"])  # raised before metrics.json was written
        entry["row"] = row
        return row

    def frames(self) -> tuple:
        """runs (one row per run, the final runs of contenders not yet run as pending) and
        each run's history by run folder."""
        from dlrun.study.readback import ordered

        rows = [self.row(e) for e in self.done]
        histories = {r["run_dir"]: e["history"] for r, e in zip(rows, self.done) if r["run_dir"] is not None}
        for contender in self.study.contenders:
            for seed in seeds(self.study):
                if not any(r["contender"] == contender.name and r["seed"] == seed and r["phase"] == "final"
                           for r in rows):
                    rows.append({"contender": contender.name, "seed": seed, "phase": "final",
                                 "status": "pending", "reason": None, "run_dir": None})
        return ordered(pd.DataFrame(rows), [c.name for c in self.study.contenders]), histories

    def finish(self, status: str) -> StudyResult:
        """Write runs.csv, the comparison and the plots (also after Ctrl-C: a valid partial)."""
        from dlrun.study.comparison import compare_runs, write_comparison
        from dlrun.study.plots import study_plots

        runs, histories = self.frames()
        comparison = compare_runs(runs, self.study.metric, self.study.settings.target)
        notes = list(self.study.notes)
        chosen = runs["contender"].isin([c.name for c in self.study.contenders if c.chosen])
        finished = int(runs.loc[runs["status"].isin(FINISHED) & chosen, "run_dir"].nunique())
        planned = self.study.planned()
        if status != "completed":
            notes.insert(0, f"partial: stopped by the user after {finished} of {planned} runs; "
                            "run the same command again to finish (finished runs are kept)")
        files = write_comparison(comparison, runs, self.study_dir, notes)
        files += study_plots(runs, histories, comparison, self.study.metric, self.study_dir)
        counts = {"planned": planned, "finished": finished, "kept": self.kept, "trained": self.trained}
        study_folder.write_state(self.study_dir, self.study, status, counts, study_folder.read_state(self.study_dir))
        return StudyResult(self.study_dir, status, comparison, runs, files, self.kept, self.trained)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def clear_keras() -> None:
    """Free the finished run's graph: hundreds of models in one process stay as fast as the first."""
    import keras

    keras.backend.clear_session()


def compare(study: Study, study_dir: Path) -> StudyResult:
    """Run `study` in `study_dir` (resuming what an earlier start finished there)."""
    study_dir = rundir.make_dir(study_dir)
    study_folder.check_folder(study_dir, study)
    if study.settings.fuse != 1 and FUSED_TIMES not in study.notes:
        study.notes.append(FUSED_TIMES)
    with rundir.run_lock(study_dir):
        previous = study_folder.read_state(study_dir)
        study_folder.write_state(study_dir, study, "running", {"planned": study.planned()}, previous)
        with StudyProgress(study.planned(), study.metric) as view:
            session = Session(study, study_dir, view)
            status = "completed"
            try:
                session.run_all()
            except KeyboardInterrupt:
                status = "interrupted"
            finally:
                forget_data()  # the runs are over: the prepared data is not kept for the process's life
        result = session.finish(status)
    if status == "interrupted":
        raise StudyInterrupted(result)
    return result


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: the partial comparison was written; `result` says where."""

    def __init__(self, result: StudyResult) -> None:
        super().__init__()
        self.result = result
