"""trainer.checkpoint (resume after a crash, kill -9 or Ctrl-C) and trainer.keep_best."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import numpy as np
import pandas as pd
import pytest

from tests.helpers import make_run

REPO = Path(__file__).resolve().parents[1]
SMALL = ["model.units=[32]", "trainer.epochs=8", "trainer.checkpoint=true", "trainer.save_model=false"]
# Early stopping whose patience alone decides: nothing counts as an improvement after
# epoch 1, so the run stops after epoch 6 (patience 5) and only if the counter survives
# a resume; its best weights (epoch 1's) must survive it too.
PATIENT = ["regularization=early_stopping", "regularization.early_stopping.patience=5",
           "regularization.early_stopping.min_delta=1000", "regularization.early_stopping.restore_best_weights=true",
           "schedule=exponential", "schedule.decay_rate=0.5"]

KILLED = r"""
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from tests.helpers import make_run
import dlrun.training as training

overrides, run_dir, kill_at = json.loads(sys.argv[2])
make = training.epoch_recorder

def recorder():  # dies at the start of epoch kill_at + 1: after the backup (last callback) saved
    rec = make()
    begin = rec.on_epoch_begin
    def on_epoch_begin(epoch, logs=None):
        if epoch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        begin(epoch, logs)
    rec.on_epoch_begin = on_epoch_begin
    return rec

training.epoch_recorder = recorder
training.train(make_run(*overrides), run_dir)
"""


def killed_run(overrides: List[str], run_dir: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLED, str(REPO), json.dumps([overrides, str(run_dir), kill_at])],
                          capture_output=True, text=True, timeout=300)


def test_killed_run_resumes_with_complete_history(tmp_path, capsys):
    from dlrun.results.rundir import LOCK_FILE
    from dlrun.training import train

    overrides = [*SMALL, *PATIENT, "diagnostics.enabled=true"]  # the statistics resume too
    run_dir = tmp_path / "run"
    out = killed_run(overrides, run_dir, kill_at=4)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 4 and state["callbacks"]["EarlyStopping"]["wait"] == 3
    assert (run_dir / LOCK_FILE).exists()  # the dead process's lock, taken over below

    resumed = train(make_run(*overrides), run_dir)
    assert "resuming from epoch 4 of 8" in capsys.readouterr().out
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]  # every epoch once; stopped by the carried patience
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert resumed.status == "completed" and metrics["resumed_from_epoch"] == 4 and metrics["epochs_run"] == 6
    assert metrics["val"]["loss"] == pytest.approx(history["val_loss"][0], rel=1e-4)  # epoch 1's weights restored
    assert not (run_dir / "checkpoint").exists() and not (run_dir / LOCK_FILE).exists()
    stats = pd.read_csv(run_dir / "gradients.csv")
    assert sorted(stats["epoch"].unique()) == list(range(0, 7))  # epoch 0 and every epoch once, across the kill
    assert len(stats) == 7 * stats["layer"].nunique() and metrics["verdict"]

    whole = train(make_run(*overrides), tmp_path / "whole")  # the same run, never interrupted
    assert whole.history["epoch"].tolist() == history["epoch"].tolist()
    assert history["learning_rate"].tolist() == pytest.approx(whole.history["learning_rate"].tolist(), rel=1e-6)
    assert "resumed_from_epoch" not in whole.metrics and not (tmp_path / "whole" / "checkpoint").exists()


# ---- in-process: the same steps as training._train_locked, with the dataset handed over
def fit(run: Any, run_dir: Path, stop_at: int = -1) -> Any:
    """Train like training.train; Ctrl-C (KeyboardInterrupt) at the start of epoch
    `stop_at` + 1. Returns (recorder rows, model, backup, callbacks)."""
    import keras

    from dlrun.checkpoints import backup_callback, keep_best_callbacks
    from dlrun.losses import resolved_name
    from dlrun.optim import schedule_callbacks
    from dlrun.preflight import checked
    from dlrun.regularization import callbacks as regularization_callbacks
    from dlrun.training import compile_model, epoch_recorder, make_datasets, setup_runtime

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if epoch == stop_at:
                raise KeyboardInterrupt

    bundle = checked(run, None)[0]
    setup_runtime(run.trainer)
    data = make_datasets(bundle, run, resolved_name(run, bundle.meta))
    model = compile_model(run, bundle.meta, data.steps_per_epoch)
    recorder = epoch_recorder()
    callbacks = [CtrlC(), recorder, *regularization_callbacks(run.regularization), *schedule_callbacks(run),
                 *keep_best_callbacks(run)]
    backup = backup_callback(run, run_dir, callbacks, dataset=data.train)
    callbacks += [backup] if backup is not None else []
    try:
        model.fit(data.train, validation_data=data.val, epochs=run.trainer.epochs, callbacks=callbacks,
                  shuffle=False, verbose=0)
    except KeyboardInterrupt:
        pass
    return recorder.rows, model, backup, callbacks


def same_rows(a: List[dict], b: List[dict]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for key in ("loss", "val_loss", "val_accuracy", "learning_rate"):
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], rel=1e-5, abs=1e-7), key


def test_resume_continues_exactly_as_the_uninterrupted_run(tmp_path):
    """Weights, optimizer, shuffle order, dropout, reduce-on-plateau and keep_best all
    continue: the resumed run's history is the uninterrupted run's."""
    from dlrun.checkpoints import kept_best

    run = make_run(*SMALL, "trainer.epochs=7", "regularization=dropout", "schedule=plateau", "schedule.patience=1",
                   "schedule.min_delta=0.05", "trainer.keep_best=true")
    whole, whole_model, _, whole_callbacks = fit(run, tmp_path / "whole")
    first, _, _, _ = fit(run, tmp_path / "run", stop_at=3)  # Ctrl-C: the checkpoint is kept
    assert len(first) == 3 and json.loads((tmp_path / "run/checkpoint/state.json").read_text())["epoch"] == 3
    rows, model, backup, callbacks = fit(run, tmp_path / "run")
    assert backup.resumed_epoch == 3 and not (tmp_path / "run" / "checkpoint").exists()
    same_rows(rows, whole)
    assert len({r["learning_rate"] for r in whole}) > 1  # the plateau schedule acted
    assert kept_best(callbacks) == kept_best(whole_callbacks) != {}
    for a, b in zip(model.get_weights(), whole_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_auto_checkpoint_skips_short_runs_and_false_writes_none(tmp_path):
    _, _, backup, _ = fit(make_run(*SMALL, "trainer.checkpoint=auto"), tmp_path / "auto", stop_at=3)
    assert backup is not None and backup.save_times_s == [] and not (tmp_path / "auto" / "checkpoint").exists()
    stale = tmp_path / "off" / "checkpoint"
    stale.mkdir(parents=True)
    (stale / "state.json").write_text("{}")
    _, _, backup, _ = fit(make_run(*SMALL, "trainer.checkpoint=false"), tmp_path / "off", stop_at=3)
    assert backup is None and not stale.exists()  # this run starts afresh in the folder: the old state is stale


def test_checkpoint_false_trains_afresh_over_an_unusable_checkpoint(tmp_path):
    from dlrun.training import train

    stale = tmp_path / "checkpoint"
    stale.mkdir()
    (stale / "state.json").write_text("{}")  # another run's leftover that could not be resumed
    result = train(make_run(*SMALL, "trainer.checkpoint=false"), tmp_path)
    assert result.status == "completed" and "resumed_from_epoch" not in result.metrics and not stale.exists()


def test_a_save_cut_short_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    from dlrun.checkpoints import read_state

    run = make_run(*SMALL)
    _, model, backup, _ = fit(run, tmp_path, stop_at=2)
    folder = tmp_path / "checkpoint"
    before = read_state(folder)
    assert {p.name for p in folder.iterdir()} == {"state.json", before["weights"], before["arrays"]}

    def killed(*args: Any, **kwargs: Any) -> None:
        (folder / "e0002-torn.weights.h5").write_bytes(b"torn")  # half a file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        backup.save(2)
    assert read_state(folder) == before and (folder / before["weights"]).exists()
    monkeypatch.undo()
    backup.save(2)  # the next save clears what the torn one left, and the save before it
    after = read_state(folder)
    assert {p.name for p in folder.iterdir()} == {"state.json", after["weights"], after["arrays"]} and after != before
    rows, _, resumed, _ = fit(run, tmp_path)
    assert resumed.resumed_epoch == 2 and [r["epoch"] for r in rows] == list(range(1, 9))


# ---- refusing a checkpoint of another config (no training needed)
def write_checkpoint(run: Any, run_dir: Path, epoch: int = 3) -> None:
    from dlrun.checkpoints import FORMAT, resume_config
    from dlrun.results.rundir import config_hash, write_json

    config = resume_config(run)
    write_json(run_dir / "checkpoint" / "state.json",
               {"format": FORMAT, "epoch": epoch, "config_hash": config_hash(config), "config": config,
                "weights": "e0003.weights.h5", "arrays": None, "callbacks": {}})


@pytest.mark.parametrize("overrides, message", [
    (["model.units=[64]"], r"another config \(model\.units: \[32\] -> \[64\]\); rerun with that config"),
    (["trainer.seed=1"], r"trainer\.seed: 0 -> 1"),
    (["trainer.epochs=3"], r"holds 3 finished epochs and trainer\.epochs=3"),
])
def test_a_checkpoint_of_another_config_is_refused(tmp_path, overrides, message):
    from dlrun.checkpoints import CheckpointError, backup_callback

    write_checkpoint(make_run(*SMALL), tmp_path)
    with pytest.raises(CheckpointError, match=message) as err:
        backup_callback(make_run(*SMALL, *overrides), tmp_path, [])
    text = str(err.value)
    assert text.startswith(f"cannot resume from {tmp_path / 'checkpoint'}: ") and "\n" not in text
    assert text.endswith("delete that folder (or choose another hydra.run.dir) to start afresh")


def test_more_epochs_or_another_display_resume(tmp_path):
    from dlrun.checkpoints import CheckpointError, backup_callback

    write_checkpoint(make_run(*SMALL), tmp_path)
    backup = backup_callback(make_run(*SMALL, "trainer.epochs=30", "trainer.verbose=1", "trainer.threads=1",
                                      "logger=tensorboard"), tmp_path, [])
    assert backup.state["epoch"] == 3
    cosine = ["schedule=cosine"]  # its length is trainer.epochs: more epochs change the schedule
    write_checkpoint(make_run(*SMALL, *cosine), tmp_path)
    with pytest.raises(CheckpointError, match=r"trainer\.epochs: 8 -> 30"):
        backup_callback(make_run(*SMALL, *cosine, "trainer.epochs=30"), tmp_path, [])


def test_an_unreadable_checkpoint_is_refused(tmp_path):
    from dlrun.checkpoints import CheckpointError, backup_callback

    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text('{"epoch": 3, "form')
    with pytest.raises(CheckpointError, match=r"state\.json cannot be read .*start afresh"):
        backup_callback(make_run(*SMALL), tmp_path, [])


# ---- keep_best
def test_keep_best_restores_the_best_epoch(tmp_path, monkeypatch):
    import dlrun.training as training

    snapshots: List[Any] = []
    make = training.epoch_recorder

    def recorder() -> Any:  # keeps every epoch's weights
        rec = make()
        end = rec.on_epoch_end

        def on_epoch_end(epoch: int, logs: Any = None) -> None:
            end(epoch, logs)
            snapshots.append(rec.model.get_weights())
        rec.on_epoch_end = on_epoch_end
        return rec

    monkeypatch.setattr(training, "epoch_recorder", recorder)
    run = make_run(*SMALL, "regularization=none", "trainer.keep_best=true", "trainer.checkpoint=false",
                   "optimizer.learning_rate=0.05")
    result = training.train(run, tmp_path)
    best = int(result.history["val_loss"].idxmin())
    assert best < len(result.history) - 1  # the last epoch is not the best: restoring means something
    assert result.metrics["kept_best_epoch"] == best + 1
    assert result.metrics["kept_best"] == {"monitor": "val_loss",
                                           "value": pytest.approx(result.history["val_loss"][best])}
    for a, b in zip(result.model.get_weights(), snapshots[best]):
        np.testing.assert_array_equal(a, b)
    assert result.metrics["val"]["loss"] == pytest.approx(result.history["val_loss"][best], rel=1e-4)


@pytest.mark.parametrize("monitor, mode", [("val_loss", "min"), ("val_accuracy", "max"), ("val_top3_accuracy", "max"),
                                           ("val_pr_auc", "max"), ("r2", "max"), ("val_f1", "max"),
                                           ("val_mae", "min"), ("val_mape", "min")])
def test_monitor_mode_from_the_name(monitor, mode):
    from dlrun.checkpoints import monitor_mode

    assert monitor_mode(monitor) == mode


def test_kept_best_is_empty_without_keep_best():
    from dlrun.checkpoints import keep_best_callbacks, kept_best

    assert keep_best_callbacks(make_run(*SMALL)) == [] and kept_best([object()]) == {}
