"""Faults a long run must survive: two runs in one folder, stale locks, Ctrl-C in
train and tune, a full disk or an unusable output folder, changed library versions
on resume; and reproducible runs."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlrun.cli import main
from dlrun.results import registry
from dlrun.results.rundir import LOCK_FILE, OutputError
from dlrun.training import train
from tests.helpers import FAST, make_run, resume_completes

DLRUN = str(Path(sys.executable).with_name("dlrun"))


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


# ---------------------------------------------------------------- Ctrl-C
def _registry(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(registry.ENV_HOME, str(tmp_path / "home"))  # subprocesses inherit it
    return tmp_path / "home"


def test_ctrl_c_during_train_records_an_interrupted_run(tmp_path: Path, monkeypatch) -> None:
    _registry(tmp_path, monkeypatch)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([DLRUN, "train", "debug=fast", "trainer.epochs=5000", "regularization=none",
                             f"hydra.run.dir={run_dir}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:  # not a terminal: a plain line after the first epoch
        if line.startswith("epoch 1/5000"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "dlrun: error: interrupted; finished results are on disk"
    assert "Traceback" not in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "Ctrl-C" in metrics["failure_reason"]
    history = pd.read_csv(run_dir / "history.csv")
    assert 1 <= len(history) == metrics["epochs_run"] < 5000 and history["loss"].notna().all()
    assert not list(run_dir.glob(".*.tmp*")) and not (run_dir / LOCK_FILE).exists()
    (entry,) = registry.entries()
    assert entry["status"] == "interrupted" and entry["run_dir"] == str(run_dir.resolve())


def _status_is(trial_json: Path, status: str) -> bool:
    try:
        return json.loads(trial_json.read_text())["status"] == status
    except (OSError, ValueError, KeyError):  # not there yet, or being written
        return False


def test_ctrl_c_during_tune_keeps_finished_trials_and_resumes(tmp_path: Path, monkeypatch) -> None:
    _registry(tmp_path, monkeypatch)
    run_dir = tmp_path / "search"
    args = ["tune", "space=units_lr", "search.max_trials=3", "search.refit=false", "debug=fast",
            "trainer.epochs=60", "regularization=none", "trainer.verbose=0", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([DLRUN, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    table = run_dir / "trials.csv"
    second = run_dir / "tuner" / "search" / "trial_1" / "trial.json"  # keras-tuner's record of trial 1
    deadline = time.time() + 240
    while time.time() < deadline and not _status_is(second, "RUNNING"):  # trial 0 done, trial 1 started
        time.sleep(0.1)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; finished results are on disk" in err and "Traceback" not in err
    before = pd.read_csv(table)
    assert before["trial"].is_unique and list(before["status"]) == ["completed", "interrupted"]
    assert pd.read_parquet(run_dir / "trials.parquet").shape == before.shape
    assert not list(run_dir.glob(".*.tmp*"))
    assert [e["status"] for e in registry.entries()] == ["interrupted"]

    resume_completes(args, tmp_path, run_dir, before, trials=3)
    assert [e["status"] for e in registry.entries()] == ["completed", "interrupted"]


# ---------------------------------------------------------------- disk full, unusable folders
# Faults installed in a `dlrun train` process before it starts (as root, chmod blocks nothing).
FAULTS = {
    "rename": ("metrics.json", "No space left on device", """
real = os.replace
def replace(src, dst, *args, **kwargs):
    if Path(dst) == RUN / NAME:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(src, dst, *args, **kwargs)
os.replace = replace
"""),
    "half-written": ("history.csv", "No space left on device", """
import pandas as pd
real = pd.DataFrame.to_csv
def to_csv(self, path=None, *args, **kwargs):
    if path is not None and Path(path).parent == RUN and Path(path).name.startswith(".history."):
        Path(path).write_text("epoch,lo")  # half a table, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(self, path, *args, **kwargs)
pd.DataFrame.to_csv = to_csv
"""),
    "unwritable": ("config.yaml", "Permission denied", """
import tempfile
real = tempfile.mkstemp
def mkstemp(*args, **kwargs):
    if Path(kwargs.get("dir", "")) == RUN and kwargs.get("prefix") == ".config.":
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    return real(*args, **kwargs)
tempfile.mkstemp = mkstemp
"""),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_full_disk_or_unwritable_folder_is_one_clear_error(tmp_path: Path, monkeypatch, fault: str) -> None:
    _registry(tmp_path, monkeypatch)
    run_dir = tmp_path / "run"
    name, reason, code = FAULTS[fault]
    script = tmp_path / "faulty_dlrun.py"
    script.write_text(f"import errno, os, sys\nfrom pathlib import Path\nRUN, NAME = Path({str(run_dir)!r}), {name!r}\n"
                      f"{code}\nfrom dlrun.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = subprocess.run([sys.executable, str(script), "train", *FAST, "trainer.epochs=2", "regularization=none",
                          f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"dlrun: error: cannot write {run_dir / name}: {reason}"]
    assert not (run_dir / name).exists()
    assert not list(run_dir.glob(".*tmp*")), "torn temporary files"
    assert not (run_dir / LOCK_FILE).exists()
    (entry,) = registry.entries()
    assert entry["status"] == "failed" and name in entry["message"]


def test_run_folder_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    for target, message in ((blocker, "is a file, not a folder"), (blocker / "run", f"is inside {blocker}, which is a file")):
        rc = main(["train", *FAST, "regularization=none", f"hydra.run.dir={target}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and err == [f"dlrun: error: hydra.run.dir='{target}': {message}; choose another output folder"]
    with pytest.raises(OutputError, match=r"results.txt/run: is inside .*results.txt, which is a file"):
        train(make_run(), blocker / "run")
    assert blocker.read_text() == "not a folder"


# ---------------------------------------------------------------- library versions
def test_resume_with_other_library_versions_is_refused(tmp_path: Path, monkeypatch) -> None:
    from importlib import metadata

    from dlrun.search.runner import ResumeError
    from tests.test_tune import SMALL, run_tune

    home = _registry(tmp_path, monkeypatch)
    run_dir = tmp_path / "search"
    run_tune(run_dir, *SMALL, "search.max_trials=1", "search.refit=false")
    state = json.loads((run_dir / "search.json").read_text())
    state["versions"]["tensorflow"] = "2.0.0"
    (run_dir / "search.json").write_text(json.dumps(state))
    installed = metadata.version("tensorflow")
    with pytest.raises(ResumeError, match=rf"other library versions: tensorflow 2.0.0 \(search\) vs "
                                          rf"{installed} \(installed\)\. Resuming would mix results"):
        run_tune(run_dir, *SMALL, "search.max_trials=1", "search.refit=false")
    assert len(registry.entries()) == 1  # the refused resume ran nothing: not registered
    assert home.is_dir()


def test_ctrl_c_after_training_still_leaves_history_and_metrics(tmp_path: Path, monkeypatch) -> None:
    import dlrun.training as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate", interrupted)  # Ctrl-C while the splits are scored
    with pytest.raises(KeyboardInterrupt):
        train(make_run("trainer.epochs=2"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "Ctrl-C" in metrics["failure_reason"]
    assert metrics["epochs_run"] == 2
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2
    assert not (tmp_path / "model.keras").exists()
