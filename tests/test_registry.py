"""The run registry and `dlrun results`: every run is registered wherever its folder
is, its end is recorded, dead runs are marked interrupted, corrupt entries are
skipped, and runs that share a config can be listed together."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlrun.cli import main
from dlrun.results import registry
from dlrun.training import train
from tests.helpers import dlrun, make_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A registry of this test's own."""
    monkeypatch.setenv(registry.ENV_HOME, str(tmp_path / "home"))
    return tmp_path / "home"


def test_train_registers_its_run_and_how_it_ended(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "run"  # a run folder outside the registry's home
    result = train(make_run("trainer.seed=3"), elsewhere)
    (entry,) = registry.entries()
    assert entry["run_dir"] == str(elsewhere.resolve()) and entry["kind"] == "train"
    assert entry["status"] == "completed" and entry["name"] == "default" and entry["seed"] == 3
    assert entry["pid"] == os.getpid() and entry["ended"] >= entry["started"]
    assert entry["config_hash"] == json.loads((elsewhere / "versions.json").read_text())["config_hash"]
    assert entry["metric"] == {"name": "test_accuracy", "value": pytest.approx(result.metrics["test"]["accuracy"])}
    assert list((home / ".registry").glob("*.json")) == [entry["_path"]]


def test_failed_and_crashed_runs_are_registered_as_failed(home: Path, tmp_path: Path, monkeypatch) -> None:
    train(make_run("data=diabetes", "optimizer=sgd", "optimizer.learning_rate=1000", "trainer.epochs=20",
                   "regularization=none"), tmp_path / "nan")
    import dlrun.training

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(dlrun.training, "write_run_info", boom)
    with pytest.raises(RuntimeError):
        train(make_run(), tmp_path / "crash")
    crashed, diverged = registry.entries()
    assert (diverged["status"], crashed["status"]) == ("failed", "failed")
    assert "NaN" in diverged["message"] and diverged["metric"]["value"] is None  # NaN is not a number to show
    assert crashed["message"] == "RuntimeError: boom"


def test_corrupt_and_partial_entries_are_skipped(home: Path, tmp_path: Path, capsys) -> None:
    train(make_run(), tmp_path / "run")
    folder = home / ".registry"
    (folder / "torn.json").write_text('{"run_dir": "/x", "kind": "tr')
    (folder / "partial.json").write_text(json.dumps({"run_dir": "/x", "kind": "train"}))
    (folder / "list.json").write_text("[1, 2]")
    (folder / "bad_time.json").write_text(json.dumps({"run_dir": "/x", "kind": "train", "status": "completed",
                                                      "started": "yesterday"}))
    assert [e["run_dir"] for e in registry.entries()] == [str((tmp_path / "run").resolve())]
    assert main(["results"]) == 0
    assert "1 of 1 matching runs shown" in capsys.readouterr().out


def _running_entry(pid: int) -> dict:
    import socket

    return {"run_dir": "/x/run", "kind": "train", "status": "running", "name": "old", "pid": pid,
            "pid_start": registry._proc_start(pid), "host": socket.gethostname(),
            "started": "2024-01-01T10:00:00+00:00"}


def test_a_dead_running_entry_is_marked_interrupted_on_the_next_start(home: Path, tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = home / ".registry"
        folder.mkdir(parents=True)
        (folder / "dead.json").write_text(json.dumps(_running_entry(int(gone.stdout))))
        (folder / "alive.json").write_text(json.dumps(_running_entry(alive.pid)))
        reused = {**_running_entry(alive.pid), "pid_start": "1"}  # the pid now belongs to another process
        (folder / "reused.json").write_text(json.dumps(reused))
        train(make_run(), tmp_path / "next")
        status = {e["_path"].stem: e["status"] for e in registry.entries()}
        assert status == {"dead": "interrupted", "reused": "interrupted", "alive": "running",
                          next(k for k in status if k not in ("dead", "alive", "reused")): "completed"}
        assert "ended without finishing" in registry.read(folder / "dead.json")["message"]
    finally:
        alive.kill()
        alive.wait()


def test_killed_train_is_marked_interrupted_on_the_next_start(home: Path, tmp_path: Path) -> None:
    args = ["train", "debug=fast", "trainer.epochs=5000", "regularization=none", "trainer.verbose=0",
            f"hydra.run.dir={tmp_path / 'killed'}"]
    proc = subprocess.Popen([str(Path(sys.executable).with_name("dlrun")), *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(e["status"] == "running" for e in registry.entries()):
            time.sleep(0.2)
        (entry,) = registry.entries()
        assert entry["status"] == "running" and entry["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert registry.entries()[0]["status"] == "running"  # nobody could say otherwise yet
    train(make_run(), tmp_path / "next")
    after = {e["run_dir"]: e["status"] for e in registry.entries()}
    assert after == {str((tmp_path / "killed").resolve()): "interrupted",
                     str((tmp_path / "next").resolve()): "completed"}


def test_results_command_filters_and_groups_by_config(home: Path, tmp_path: Path, capsys) -> None:
    for i, extra in enumerate([("trainer.seed=0",), ("trainer.seed=1",), ("name=other", "optimizer=sgd")]):
        train(make_run(*extra), tmp_path / f"run{i}")
    first, second, third = (str((tmp_path / f"run{i}").resolve()) for i in range(3))
    hashes = {e["run_dir"]: e["config_hash"] for e in registry.entries()}
    assert hashes[first] == hashes[second] != hashes[third]  # only the seed differs: one config

    def shown(*args: str) -> str:
        assert main(["results", *args]) == 0
        return capsys.readouterr().out

    out = shown()
    assert out.index("run2") < out.index("run1") < out.index("run0")  # newest first
    assert "3 of 3 matching runs shown" in out and "test_accuracy" in out and hashes[first] in out
    out = shown("--same-config", str(tmp_path / "run0"))
    assert f"runs with config hash {hashes[first]}" in out and "run0" in out and "run1" in out
    assert "run2" not in out
    assert "run2" not in shown("--same-config", hashes[first][:6])
    out = shown("--same-config", "last")  # the newest run's config
    assert f"runs with config hash {hashes[third]}" in out and "run2" in out and "run1" not in out
    out = shown("--name", "oth*")
    assert "run2" in out and "run0" not in out
    assert "1 of 3 matching runs shown; --last 0 shows all" in shown("--last", "1")
    assert "no registered run matches" in shown("--status", "failed")
    assert "completed" in shown("--kind=train", "--status=completed")


@pytest.mark.parametrize("args,message", [
    (["--status", "done"], r"--status 'done': one of completed, failed, interrupted, running, stopped"),
    (["--kind", "fit"], r"--kind 'fit': one of train, tune"),
    (["--last", "-1"], r"--last '-1': must be a whole number >= 0"),
    (["--same-config", "ffffffff"], r"no registered run has that config hash"),
    (["--sortby"], r"unknown option '--sortby'.*did you mean '--sort'"),
    (["--name"], r"--name needs a value"),
])
def test_results_command_bad_options(home: Path, tmp_path: Path, capsys, args, message) -> None:
    train(make_run(), tmp_path / "run")
    capsys.readouterr()
    assert main(["results", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), lines


def test_results_command_is_quick_and_imports_no_tensorflow(home: Path, tmp_path: Path) -> None:
    out = dlrun(["results"], tmp_path)
    assert out.returncode == 0 and "no runs registered in" in out.stdout
    code = "import sys; from dlrun.cli import main; main(['results']); assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path).returncode == 0


def test_default_registry_is_under_experiments_of_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(registry.ENV_HOME)
    monkeypatch.chdir(tmp_path)
    assert registry.folder() == Path("experiments") / ".registry"
    with registry.record("train", tmp_path / "r", "n", "abc123", 0) as entry:
        entry.finish("completed", ("test_accuracy", 0.5))
    (found,) = registry.entries()
    assert found["_path"].resolve().parent == tmp_path / "experiments" / ".registry"
    assert found["metric"] == {"name": "test_accuracy", "value": 0.5}
