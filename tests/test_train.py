"""A train run writes every file of the results contract; the CLI runs end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlrun.training import train
from tests.helpers import REPO, dlrun, make_run, write_people_csv

CONTRACT = ["config.yaml", "command.txt", "versions.json", "history.csv", "metrics.json", "model.keras",
            "learning_curves.png"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    run = make_run("trainer.epochs=3", "optimizer=momentum")
    return run, train(run, run_dir)


def test_run_writes_the_results_contract(digits_run) -> None:
    run, result = digits_run
    d = result.run_dir
    for name in CONTRACT:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert not list(d.glob(".*.tmp*")), "temporary files left behind"
    assert (d / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_has_one_row_per_epoch(digits_run) -> None:
    _, result = digits_run
    history = pd.read_csv(result.run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    for col in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time_s"):
        assert col in history.columns and history[col].notna().all(), col


def test_metrics_json_reports_final_metrics(digits_run) -> None:
    run, result = digits_run
    m = json.loads((result.run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and m["failure_reason"] is None
    for split in ("train", "val", "test"):
        assert set(m[split]) >= {"loss", "accuracy"} and 0.0 <= m[split]["accuracy"] <= 1.0
    assert m["epochs_run"] == 3 and m["best_epoch"] in (1, 2, 3)
    assert m["params"] == result.model.count_params() > 0
    assert m["wall_time_s"] >= m["fit_time_s"] > 0
    assert m["data"]["rows"]["train"] + m["data"]["rows"]["val"] + m["data"]["rows"]["test"] == 200


def test_saved_config_and_versions(digits_run) -> None:
    run, result = digits_run
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["optimizer"]["name"] == "momentum" and saved["optimizer"]["momentum"] == 0.9
    assert saved["trainer"]["epochs"] == 3
    info = json.loads((result.run_dir / "versions.json").read_text())
    assert info["versions"]["tensorflow"] and info["versions"]["keras"] and info["versions"]["dlrun"]
    assert len(info["config_hash"]) == 12 and info["seed"] == 0


def test_saved_model_reloads_with_the_same_predictions(digits_run) -> None:
    import keras
    import numpy as np

    _, result = digits_run
    x = np.random.default_rng(0).random((5, 64)).astype("float32")
    reloaded = keras.models.load_model(result.run_dir / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-5)


def test_early_stopping_ends_the_run_before_the_epoch_budget(tmp_path: Path) -> None:
    run = make_run("trainer.epochs=60", "regularization=early_stopping", "regularization.early_stopping.patience=1",
                   "regularization.early_stopping.min_delta=10", "data=iris")
    result = train(run, tmp_path)
    assert result.metrics["epochs_run"] == 2  # min_delta=10 means no epoch ever counts as improvement


def test_full_batch_gradient_descent_takes_one_step_per_epoch(tmp_path: Path) -> None:
    run = make_run("optimizer=sgd", "trainer.batch_size=full", "trainer.epochs=2", "data=iris")
    result = train(run, tmp_path)
    assert int(result.model.optimizer.iterations.numpy()) == 2


def test_diverging_loss_is_recorded_as_failed(tmp_path: Path) -> None:
    run = make_run("data=diabetes", "optimizer=sgd", "optimizer.learning_rate=1000", "trainer.epochs=20",
                   "regularization=none")
    result = train(run, tmp_path)
    assert result.status == "failed"
    assert "NaN" in result.metrics["failure_reason"]
    assert result.metrics["epochs_run"] < 20
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_csv_data_trains(tmp_path: Path) -> None:
    path = write_people_csv(tmp_path / "people.csv")
    run = make_run("data=csv", f"data.path={path}", "data.target=label", "trainer.epochs=2")
    result = train(run, tmp_path / "run")
    assert result.status == "completed"
    assert result.metrics["data"]["classes"] == ["no", "yes"]
    assert result.metrics["data"]["filled_values"] > 0


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_preset_runs_with_debug_fast(preset: str, tmp_path: Path) -> None:
    result = train(make_run(f"experiment={preset}"), tmp_path)
    assert result.status == "completed" and result.metrics["epochs_run"] == 1


def test_cli_train_end_to_end(tmp_path: Path) -> None:
    out = dlrun(["train", "debug=fast", "+optimizer=adam", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "results:" in out.stdout and "test" in out.stdout
    for name in CONTRACT:
        assert (tmp_path / "run" / name).is_file(), name
    assert (tmp_path / "run" / "command.txt").read_text().strip() == \
        f"dlrun train debug=fast +optimizer=adam hydra.run.dir={tmp_path / 'run'}"
    assert "Traceback" not in out.stderr


def test_cli_default_run_directory_is_under_experiments(tmp_path: Path) -> None:
    out = dlrun(["train", "debug=fast", "trainer.verbose=0", "trainer.save_model=false"], tmp_path)
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "experiments" / "default").iterdir()
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "model.keras").exists()


def test_cli_multirun_writes_one_directory_per_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = dlrun(["train", "-m", "optimizer=sgd,adam", "debug=fast", "trainer.verbose=0",
                 f"hydra.sweep.dir={sweep}"], tmp_path)
    assert out.returncode == 0, out.stderr
    names = [yaml.safe_load((sweep / str(i) / "config.yaml").read_text())["optimizer"]["name"] for i in (0, 1)]
    assert names == ["sgd", "adam"]
    assert all((sweep / str(i) / "metrics.json").is_file() for i in (0, 1))


def test_cli_check_builds_without_training(tmp_path: Path) -> None:
    out = dlrun(["check", "model=cnn"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "conv_1 (Conv2D)" in out.stdout and "Nothing was trained" in out.stdout
    assert "parameters" in out.stdout
    assert not (tmp_path / "experiments").exists()


def test_cli_user_config_dir(tmp_path: Path) -> None:
    conf = tmp_path / "myconf" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "fast_sgd.yaml").write_text("defaults:\n  - /schema/optimizer/momentum@_here_\n  - _self_\n"
                                        "name: momentum\nlearning_rate: 0.2\n")
    out = dlrun(["train", "--config-dir", str(tmp_path / "myconf"), "optimizer=fast_sgd", "debug=fast",
                 "trainer.verbose=0", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optimizer"]["learning_rate"] == 0.2
