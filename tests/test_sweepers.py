"""`dlrun train -m` with Hydra's sweepers: the task returns optimized_metric, so Optuna
can optimize it; a plugin's own targets are trusted, a user's are still checked; the
jobs of a sweep (presets included) are validated first; every sweep is summarized."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlrun.cli import main, sweep_jobs
from dlrun.results.sweep import FailedObjective, objective
from dlrun.config import compose
from dlrun.errors import ConfigError
from tests.helpers import FAST, dlrun

TINY = ["data=iris", *FAST]  # 1 epoch on iris: a trial takes well under a second


def optuna_sweep(tmp_path: Path, *overrides: str, trials: int = 3):
    """Run an Optuna sweep in a subprocess; (process, sweep folder)."""
    sweep_dir = tmp_path / "sweep"
    out = dlrun(["train", "-m", "hydra/sweeper=optuna", f"hydra.sweeper.n_trials={trials}",
                 "hydra.sweeper.sampler.seed=0", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    return out, sweep_dir


def test_optuna_sweep_minimizes_the_validation_loss(tmp_path: Path) -> None:
    out, sweep_dir = optuna_sweep(tmp_path, "optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))")
    assert out.returncode == 0, out.stderr
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert math.isfinite(result["best_value"]) and "optimizer.learning_rate" in result["best_params"]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary["job"]) == [0, 1, 2] and set(summary["status"]) == {"completed"}
    assert result["best_value"] == pytest.approx(summary["val_loss"].min())  # what the jobs returned
    assert "optimizer.learning_rate" in summary.columns and "allowed_imports" not in out.stderr


def test_optuna_sweep_maximizes_validation_accuracy(tmp_path: Path) -> None:
    out, sweep_dir = optuna_sweep(tmp_path, "optimized_metric=val_accuracy", "hydra.sweeper.direction=maximize",
                                  "optimizer.learning_rate=interval(0.001, 0.1)", trials=2)
    assert out.returncode == 0, out.stderr
    assert "better when higher" not in out.stderr  # the direction fits the metric: no warning
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_value"]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert 0 < best <= 1 and best == pytest.approx(summary["val_accuracy"].max())


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    # lr 1e12 diverges (status failed); val_size above 0.59 leaves fewer training rows than
    # a batch of 32 (an error inside the job): both are failed trials, the search goes on.
    out, sweep_dir = optuna_sweep(tmp_path, "optimizer=sgd", "optimizer.learning_rate=choice(0.01, 1e12)",
                                  "data.val_size=interval(0.3, 0.75)", trials=6)
    assert out.returncode == 0, out.stderr
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert len(summary) == 6
    errors = summary[summary["status"] == "error"]
    diverged = summary[(summary["status"] != "error") & summary["val_loss"].isna()]  # NaN: failed or not finite
    assert len(errors) and errors["failure_reason"].str.contains("larger than the training split").all()
    assert len(diverged) and diverged.index.min() < 5  # a trial after it still ran
    assert "Failed experiment" in out.stdout + out.stderr  # Optuna's word for a failed trial
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(summary["val_loss"].min())


def test_objective_is_the_optimized_metric_or_a_failure() -> None:
    metrics = {"val": {"loss": 0.5, "accuracy": 0.9}, "test": {"top3_accuracy": 1.0}, "failure_reason": None}
    assert objective("val_accuracy", "completed", metrics) == 0.9
    assert objective("test_top3_accuracy", "completed", metrics) == 1.0
    assert math.isnan(objective("val_loss", "failed", {"failure_reason": "loss became NaN/inf at epoch 3"}))
    assert math.isnan(objective("val_loss", "completed", {"val": {"loss": float("nan")}}))
    with pytest.raises(ValueError, match="loss became NaN"):  # what Optuna gets: not a number, a failed trial
        float(FailedObjective("loss became NaN/inf at epoch 3"))


def test_a_typo_in_optimized_metric_is_refused_before_training(tmp_path: Path) -> None:
    out = dlrun(["train", "optimized_metric=val_acuracy", *TINY], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "dlrun: error: optimized_metric='val_acuracy': is never produced by this model; one of test_accuracy, "
        "test_loss, train_accuracy, train_loss, val_accuracy, val_loss (did you mean 'val_accuracy'?) "
        "(add metrics with trainer.metrics=[...])"]
    assert not (tmp_path / "experiments").exists()


def test_tune_accepts_optimized_metric() -> None:
    from dlrun.search.config import validate_tune

    assert validate_tune(compose("tune", ["optimized_metric=val_accuracy", *TINY])).run.optimized_metric \
        == "val_accuracy"


def test_a_plugins_own_targets_are_trusted() -> None:
    cfg = compose("train", ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random"], keep_hydra=True)
    assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.RandomSampler"


@pytest.mark.parametrize("override", ["hydra.sweeper.sampler._target_=os.system",
                                      "+hydra.sweeper.sampler.x={_target_:subprocess.call}"])
def test_a_target_the_user_writes_is_still_checked(override: str) -> None:
    with pytest.raises(ConfigError, match=r"imports from '(os|subprocess)', which allowed_imports does not list"):
        compose("train", ["hydra/sweeper=optuna", override], keep_hydra=True)


def test_a_sweeper_option_in_a_users_folder_is_still_checked(tmp_path: Path) -> None:
    folder = tmp_path / "conf" / "hydra" / "sweeper" / "sampler"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("_target_: subprocess.call\n")
    with pytest.raises(ConfigError, match=r"hydra.sweeper.sampler._target_='subprocess.call': imports from"):
        compose("train", ["hydra/sweeper=optuna", "hydra/sweeper/sampler=mine"], [str(tmp_path / "conf")],
                keep_hydra=True)


def test_sweep_jobs_take_the_presets_params_and_the_fixed_part_of_optuna_syntax() -> None:
    assert sweep_jobs(["data=iris"], {"optimizer": "sgd,adam"}) == [["optimizer=sgd", "data=iris"],
                                                                    ["optimizer=adam", "data=iris"]]
    assert sweep_jobs(["optimizer=adam"], {"optimizer": "sgd,momentum"}) == [["optimizer=adam"]]  # the command wins
    assert sweep_jobs(["optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))", "data=iris"],
                      {"trainer.epochs": "3"}) == [["trainer.epochs=3", "data=iris"]]


def test_a_bad_value_in_a_presets_sweep_params_is_refused_before_any_job(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "lr_sweep.yaml").write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n"
                                          "      optimizer.learning_rate: 0.01,-1\n")
    sweep_dir = tmp_path / "sweep"
    rc = main(["train", "-m", "--config-dir", str(tmp_path / "conf"), "experiment=lr_sweep", *TINY,
               f"hydra.sweep.dir={sweep_dir}"])
    assert rc == 2
    assert "optimizer.learning_rate=-1.0: must be > 0" in capsys.readouterr().err
    assert not sweep_dir.exists()


def test_a_basic_sweep_writes_a_summary(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    out = dlrun(["train", "-m", "optimizer=sgd,adam", *TINY, f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary.columns[:4]) == ["job", "optimizer", "status", "val_loss"]
    assert list(summary["optimizer"]) == ["sgd", "adam"] and set(summary["status"]) == {"completed"}
    assert {"test_accuracy", "test_loss", "epochs", "fit_time_s", "run_dir"} <= set(summary.columns)
    assert all((Path(d) / "metrics.json").exists() for d in summary["run_dir"])
    assert (sweep_dir / "summary.md").read_text().startswith("| job | optimizer | status | val_loss |")
    assert "ranked by val_loss (lower is better)" in out.stdout
