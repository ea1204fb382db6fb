"""Two runs in one folder, stale locks, and reproducible runs."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dlrun.results.rundir import LOCK_FILE, OutputError
from dlrun.training import train
from tests.helpers import make_run


def _lock(folder: Path, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then"}))


def test_second_run_in_a_busy_folder_is_refused(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path, owner.pid)
        with pytest.raises(OutputError, match=rf"in use by another run \(pid {owner.pid} on "):
            train(make_run(), tmp_path)
        assert not (tmp_path / "metrics.json").exists()
    finally:
        owner.kill()
        owner.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lock(tmp_path, int(gone.stdout))
    result = train(make_run(), tmp_path)
    assert result.status == "completed"
    assert not (tmp_path / LOCK_FILE).exists()


def test_search_in_a_busy_folder_is_refused(tmp_path: Path) -> None:
    from tests.test_tune import run_tune

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path, owner.pid)
        with pytest.raises(OutputError, match="in use by another run"):
            run_tune(tmp_path, "space=units_lr", "search.max_trials=1")
        assert not (tmp_path / "trials.csv").exists()
    finally:
        owner.kill()
        owner.wait()


def test_same_seed_and_deterministic_mode_give_identical_history(tmp_path: Path) -> None:
    histories = []
    for name in ("a", "b"):
        run = make_run("trainer.epochs=3", "trainer.deterministic=true", "regularization=[dropout,noise]",
                       "trainer.seed=7")
        train(run, tmp_path / name)
        histories.append(pd.read_csv(tmp_path / name / "history.csv").drop(columns=["epoch_time_s"]))
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
