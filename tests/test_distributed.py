"""Parallel trials on keras-tuner's distributed mode: a chief oracle in the dlrun
process and worker processes started by it (search.workers=N)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlrun.search import distributed
from tests.helpers import dlrun, resume_completes
from tests.test_tune import run_tune

SEARCH = ["space=units_lr", "space.model.units.max=64", "search.refit=false", "debug=fast", "trainer.verbose=0"]


def processes_of(run_dir: Path) -> list:
    """pids of the live local workers of the search in `run_dir`."""
    out = subprocess.run(["pgrep", "-f", f"dlrun.search.worker {run_dir}/"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_threads_are_split_between_workers() -> None:
    assert distributed.threads_per_worker(2, cores=2) == 1
    assert distributed.threads_per_worker(3, cores=16) == 5
    assert distributed.threads_per_worker(4, cores=2) == 1


def test_two_workers_run_one_search_into_one_table(tmp_path: Path) -> None:
    result = run_tune(tmp_path, *SEARCH, "search.max_trials=4", "search.workers=2")
    assert result.status == "completed"
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 4 and trials["trial"].is_unique and set(trials["status"]) == {"completed"}
    assert trials["val_loss"].notna().all() and trials["params"].gt(0).all()
    logs = sorted((tmp_path / "workers").glob("tuner*.log"))
    assert [p.name for p in logs] == ["tuner0.log", "tuner1.log"]
    assert not (tmp_path / "workers" / distributed.WORKER_STATE).exists()  # removed with the workers
    ran = sum(log.read_text().count(" completed") for log in logs)
    assert ran == 4  # every trial was trained by a worker, none twice
    assert not processes_of(tmp_path)  # every worker is gone
    assert (tmp_path / "best.yaml").exists()


def test_a_failed_trial_keeps_its_reason_across_processes(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "data=diabetes", "optimizer=sgd", "regularization=none", "trainer.epochs=3",
                      "trainer.verbose=0", "search=grid", "space=units_lr", "~space.model.units",
                      "+space.model.units={type:Fixed,value:16}", "~space.optimizer.learning_rate",
                      "+space.optimizer.learning_rate={type:Choice,values:[1000.0,0.001]}", "search.refit=false",
                      "search.workers=1")
    trials = result.trials.set_index("optimizer.learning_rate")
    assert trials.loc[1000.0, "status"] == "failed"
    assert "NaN" in trials.loc[1000.0, "failure_reason"]
    assert result.best["hyperparameters"]["optimizer.learning_rate"] == 0.001


def test_worker_environment_must_be_complete(tmp_path: Path) -> None:
    out = dlrun(["tune", *SEARCH], tmp_path, env_extra={distributed.ENV_IP: "127.0.0.1"})
    assert out.returncode == 2
    assert out.stderr.strip().startswith("dlrun: error: KERASTUNER_ORACLE_PORT")
    assert not (tmp_path / "experiments").exists()


def test_ctrl_c_stops_the_chief_and_every_worker_and_the_search_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "search"
    args = ["tune", *SEARCH, "search.max_trials=4", "trainer.epochs=30", "regularization=none",
            "search.workers=2", f"hydra.run.dir={run_dir}"]
    exe = Path(sys.executable).with_name("dlrun")
    chief = subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not (run_dir / "trials.csv").exists():
        time.sleep(0.2)
    assert (run_dir / "trials.csv").exists(), chief.communicate()
    chief.send_signal(signal.SIGINT)
    _, err = chief.communicate(timeout=60)
    assert chief.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not processes_of(run_dir)
    before = pd.read_csv(run_dir / "trials.csv")
    assert before["trial"].is_unique and (before["status"] == "completed").sum() >= 1

    resume_completes(args, tmp_path, run_dir, before, trials=4)


def test_a_worker_killed_mid_trial_fails_that_trial_only(tmp_path: Path) -> None:
    def kill_first_worker_once(row: dict) -> None:  # runs in the chief after the first trial ends
        if killed:
            return
        deadline = time.time() + 30
        while time.time() < deadline:  # wait until tuner0 holds a trial (the oracle saves that)
            state = json.loads((tmp_path / "tuner" / "search" / "oracle.json").read_text())
            if "tuner0" in state["ongoing_trials"]:
                break
            time.sleep(0.05)
        for pid in processes_of(tmp_path):
            if b"KERASTUNER_TUNER_ID=tuner0\0" in Path(f"/proc/{pid}/environ").read_bytes():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    killed: list = []
    from dlrun.search.runner import tune
    from tests.test_tune import tune_config

    result = tune(tune_config(*SEARCH, "search.max_trials=6", "trainer.epochs=20", "regularization=none",
                              "search.workers=2"), tmp_path, listener=kill_first_worker_once)
    trials = result.trials
    assert killed
    assert len(trials) == 6 and trials["trial"].is_unique
    dead = trials[trials["status"] == "failed"]
    assert len(dead) == 1 and "worker tuner0 exited with code -9" in dead["failure_reason"].iloc[0]
    assert (trials["status"] == "completed").sum() == 5  # the other worker ran the rest
    assert not processes_of(tmp_path)


@pytest.mark.parametrize("override,message", [
    ("search.workers=-1", r"search.workers=-1: must be >= 0"),
    ("search.worker_threads=-2", r"search.worker_threads=-2: must be >= 0"),
    ("search.port=70000", r"search.port=70000: must be in \[0, 65535\]"),
])
def test_bad_distributed_settings_are_refused(override: str, message: str) -> None:
    from dlrun.errors import ConfigError
    from tests.test_tune import tune_config

    with pytest.raises(ConfigError, match=message):
        tune_config(*SEARCH, override)


def test_worker_threads_setting_reaches_the_workers(tmp_path: Path) -> None:
    result = run_tune(tmp_path, *SEARCH, "search.max_trials=1", "search.workers=1", "search.worker_threads=3")
    assert result.status == "completed"
    assert "tuner0: ready, 3 CPU thread(s)" in (tmp_path / "workers" / "tuner0.log").read_text()


def test_a_worker_started_by_hand_joins_a_chief(tmp_path: Path, monkeypatch) -> None:
    """The multi-machine recipe of the README, on loopback: the chief is `dlrun tune` with
    KERASTUNER_TUNER_ID=chief, the worker the same command with its own id."""
    port = distributed.free_port("127.0.0.1")
    args = [*SEARCH, "search.max_trials=3"]
    env = {distributed.ENV_IP: "127.0.0.1", distributed.ENV_PORT: str(port)}
    worker = subprocess.Popen([str(Path(sys.executable).with_name("dlrun")), "tune", *args,
                               f"hydra.run.dir={tmp_path / 'elsewhere'}"], cwd=tmp_path,
                              env={**os.environ, **env, distributed.ENV_ID: "tuner9"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for name, value in {**env, distributed.ENV_ID: "chief"}.items():
            monkeypatch.setenv(name, value)
        result = run_tune(tmp_path / "chief", *args)
        out, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert result.status == "completed" and len(result.trials) == 3
    assert set(result.trials["status"]) == {"completed"}
    assert worker.returncode == 0, err
    assert "tuner9: the chief has no more trials; this worker ran 3" in out
    assert not (tmp_path / "elsewhere" / "trials.csv").exists()  # the chief writes the tables
