"""dlrun tune: every algorithm, grid size, seeds, conditional spaces, failed trials,
resume after a kill, and best.yaml re-run by dlrun train."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlrun.errors import ConfigError
from tests.helpers import FAST, dlrun, kill_when, resume_completes

SMALL = ["space=units_lr", "space.model.units.max=64", "search.max_trials=2"]


def tune_config(*overrides: str, fast: bool = True):
    from dlrun.config import compose, normalize_overrides
    from dlrun.search.config import validate_tune

    ov = normalize_overrides([*(FAST if fast else []), *overrides], "tune")
    return validate_tune(compose("tune", ov), ov)


def run_tune(tmp_path: Path, *overrides: str):
    from dlrun.search.runner import tune

    return tune(tune_config(*overrides), tmp_path)


def write_space(tmp_path: Path, name: str, text: str) -> str:
    folder = tmp_path / "conf" / "space"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return str(tmp_path / "conf")


@pytest.mark.parametrize("algorithm,extra", [
    ("random", []),
    ("grid", ["~space.optimizer.learning_rate", "+space.optimizer.learning_rate={type:Choice,values:[0.001,0.01]}", "space.model.units.min=32",
              "space.model.units.max=64", "space.model.units.step=32"]),
    ("bayesian", ["search.max_trials=3", "search.num_initial_points=2"]),
    ("hyperband", ["search.max_trials=null", "search.max_epochs=2", "search.factor=2"]),
])
def test_each_algorithm_runs_and_writes_the_tables(tmp_path: Path, algorithm: str, extra: list) -> None:
    result = run_tune(tmp_path, f"search={algorithm}", *SMALL, *extra)
    assert result.status == "completed"
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) >= 2 and set(trials["status"]) == {"completed"}
    assert trials["trial"].is_unique
    for col in ("model.units", "optimizer.learning_rate", "objective", "best_epoch", "duration_s", "params",
                "loss", "val_loss", "val_accuracy", "failure_reason"):
        assert col in trials.columns, col
    assert pd.read_parquet(tmp_path / "trials.parquet").shape == trials.shape
    assert (tmp_path / "trials.md").read_text().startswith("| trial | status |")
    for name in ("best.yaml", "best_metrics.json", "best_model.keras", "objective_by_trial.png",
                 "objective_vs_hyperparameters.png", "search.json", "config.yaml", "versions.json"):
        assert (tmp_path / name).is_file(), name
    best = json.loads((tmp_path / "best_metrics.json").read_text())
    assert best["value"] == pytest.approx(trials["objective"].min())
    assert set(best["refit"]["test"]) >= {"loss", "accuracy"}
    if algorithm == "hyperband":
        assert "epochs_budget" in trials.columns


def test_grid_runs_exactly_the_grid_size(tmp_path: Path) -> None:
    from dlrun.search.config import planned_trials

    space = write_space(tmp_path, "tiny", "optimizer:\n"
                        "  option: {type: Choice, values: [sgd, momentum, adam]}\n"
                        "  momentum: {type: Choice, values: [0.5, 0.9], when: {optimizer: [momentum]}}\n"
                        "model:\n  units: {type: Int, min: 16, max: 32, step: 16}\n")
    from dlrun.config import compose
    from dlrun.search.config import validate_tune
    from dlrun.search.runner import tune

    ov = [*FAST, "search=grid", "space=tiny"]
    cfg = validate_tune(compose("tune", ov, [space]), ov, [space])
    assert planned_trials(cfg) == 8  # (sgd + 2 momentum values + adam) x 2 widths
    result = tune(cfg, tmp_path / "run")
    trials = result.trials
    assert len(trials) == 8 and set(trials["status"]) == {"completed"}
    combos = trials[["optimizer", "optimizer.momentum", "model.units"]].fillna("-").astype(str).agg("|".join, axis=1)
    assert combos.is_unique
    # conditional: momentum is set only where the optimizer is momentum
    assert trials.loc[trials["optimizer"] != "momentum", "optimizer.momentum"].isna().all()
    assert trials.loc[trials["optimizer"] == "momentum", "optimizer.momentum"].notna().all()


def test_same_seed_same_trials_seed_zero_included(tmp_path: Path) -> None:
    def sequence(folder: str, seed: int) -> list:
        result = run_tune(tmp_path / folder, *SMALL, f"search.seed={seed}", "search.refit=false")
        return result.trials[["model.units", "optimizer.learning_rate"]].values.tolist()

    first = sequence("a", 0)
    assert first == sequence("b", 0)
    assert first != sequence("c", 5)


def test_conditional_space_records_only_active_hyperparameters(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "search.max_trials=6", "search.refit=false", "search.seed=3")
    trials = result.trials
    assert trials["optimizer"].nunique() >= 2
    for _, row in trials.iterrows():
        assert pd.isna(row["optimizer.momentum"]) == (row["optimizer"] != "momentum")
        assert pd.isna(row["optimizer.rho"]) == (row["optimizer"] not in ("rmsprop", "adadelta"))
    md = (tmp_path / "trials.md").read_text()
    assert "| nan |" not in md


def test_nan_trial_is_failed_and_the_search_goes_on(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "data=diabetes", "optimizer=sgd", "regularization=none", "trainer.epochs=5",
                      "search=grid", "space=units_lr", "~space.model.units", "+space.model.units={type:Fixed,value:16}",
                      "~space.optimizer.learning_rate", "+space.optimizer.learning_rate={type:Choice,values:[1000.0,0.001]}")
    trials = result.trials.set_index("optimizer.learning_rate")
    assert result.status == "completed"
    assert trials.loc[1000.0, "status"] == "failed"
    assert "NaN" in trials.loc[1000.0, "failure_reason"] and "epoch" in trials.loc[1000.0, "failure_reason"]
    assert trials.loc[0.001, "status"] == "completed"
    assert result.best["hyperparameters"]["optimizer.learning_rate"] == 0.001


def test_consecutive_failures_stop_the_search_with_a_message(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "data=diabetes", "optimizer=sgd", "regularization=none", "trainer.epochs=5",
                      "space=units_lr", "~space.optimizer.learning_rate", "+space.optimizer.learning_rate={type:Float,min:1000,max:10000}",
                      "search.max_trials=6", "search.max_consecutive_failures=2")
    assert result.status == "stopped"
    assert "2 trials failed in a row" in result.message
    assert len(result.trials) == 2 and set(result.trials["status"]) == {"failed"}
    assert result.best is None


def test_objective_std_with_cross_validation_and_executions(tmp_path: Path) -> None:
    result = run_tune(tmp_path, *SMALL, "search.max_trials=1", "search.cv_folds=3", "search.refit=false")
    assert result.trials.loc[0, "val_loss_std"] >= 0
    result = run_tune(tmp_path / "b", *SMALL, "search.max_trials=1", "search.executions_per_trial=2",
                      "search.refit=false")
    assert result.trials.loc[0, "status"] == "completed"


def test_resume_refuses_a_changed_space_and_overwrite_starts_afresh(tmp_path: Path) -> None:
    from dlrun.search.runner import ResumeError

    run_tune(tmp_path, *SMALL, "search.refit=false")
    with pytest.raises(ResumeError, match=r"changed: space.model.units.max: 64 -> 128"):
        run_tune(tmp_path, *SMALL, "space.model.units.max=128")
    with pytest.raises(ResumeError, match=r"search.name: 'random' -> 'bayesian'"):
        run_tune(tmp_path, *SMALL, "search=bayesian")
    result = run_tune(tmp_path, *SMALL, "space.model.units.max=128", "search.overwrite=true", "search.refit=false")
    assert len(result.trials) == 2


def test_rerun_of_a_finished_search_runs_nothing_new(tmp_path: Path) -> None:
    first = run_tune(tmp_path, *SMALL, "search.refit=false")
    again = run_tune(tmp_path, *SMALL, "search.refit=false")
    pd.testing.assert_frame_equal(first.trials, again.trials)


BAD_TUNE = [
    (["search=grid", "space=units_lr"], r"space.optimizer.learning_rate: search=grid needs a step for a Float"),
    (["space=units_lr", "space.model.units.min=600"], r"space.model.units.min=600.*must be below max"),
    (["space=units_lr", "space.optimizer.learning_rate.min=0"], r"must be > 0 with sampling: log"),
    (["space=units_lr", "space.model.units.step=0"], r"space.model.units.step=0.*must be > 0"),
    (["space=units_lr", "~space.model.units", "+space.model.units={type:Choice,values:[8,8]}"], r"holds 8 twice"),
    (["space=units_lr", "~space.model.units", "+space.model.units={type:Choice,values:[8,wide]}"], r"must all be of one type"),
    (["space=units_lr", "+space.optimizer.lr={type:Float,min:0.1,max:0.2}"],
     r"space.optimizer.lr=0.1: cannot be applied: optimizer.lr: unknown key"),
    (["space=units_lr", "space.model.units.type=Integer"], r"space.model.units.type='Integer'.*did you mean 'Int'"),
    (["search.objective=val_auc"], r"search.objective='val_auc': is never produced"),
    (["search.objective=f1_score"], r"search.objective='f1_score': is never produced"),
    # a typo is an unknown name with a suggestion, not an unknown direction
    (["search.objective=val_acuracy"], r"search.objective='val_acuracy': is never produced.*did you mean 'val_accuracy'"),
    (["search=hyperband", "search.max_trials=5"], r"hyperband sizes itself"),
    (["search.max_trials=0"], r"search.max_trials=0: must be > 0"),
    (["search.seed=-1"], r"search.seed=-1: must be >= 0"),
    (["space.optimizer.option.values=[sgd,adamm]"], r"space.optimizer.option='adamm': not an option of optimizer.*did you mean 'adam'"),
]


@pytest.mark.parametrize("overrides,message", BAD_TUNE, ids=[" ".join(c[0]) for c in BAD_TUNE])
def test_bad_search_config_is_refused_before_anything_runs(capsys, tmp_path: Path, overrides, message) -> None:
    from dlrun.cli import main

    rc = main(["tune", *overrides, *FAST, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not (tmp_path / "run").exists()


def test_a_real_objective_with_no_direction_hint_needs_search_direction() -> None:
    from dlrun.config.schema import SearchBase
    from dlrun.search.config import check_objective

    with pytest.raises(ConfigError, match=r"search.direction='auto': cannot tell whether 'val_kappa'.*min or max"):
        check_objective(SearchBase(objective="val_kappa"), ["kappa"])
    check_objective(SearchBase(objective="val_kappa", direction="max"), ["kappa"])
    with pytest.raises(ConfigError, match=r"'val_kapa': is never produced.*did you mean 'val_kappa'"):
        check_objective(SearchBase(objective="val_kapa"), ["kappa"])


def test_cli_checks_the_direction_before_any_run_folder(capsys, monkeypatch, tmp_path: Path) -> None:
    from dlrun.cli import main
    from dlrun.search import config

    monkeypatch.setattr(config, "MAXIMIZE_HINTS", ())  # val_accuracy: real, but no longer a hint
    rc = main(["tune", "search.objective=val_accuracy", *FAST, f"hydra.run.dir={tmp_path / 'run'}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, lines
    assert "search.direction='auto': cannot tell whether 'val_accuracy'" in lines[0]
    assert not (tmp_path / "run").exists()


def test_empty_space_is_refused(tmp_path: Path) -> None:
    space = write_space(tmp_path, "empty", "{}\n")
    from dlrun.config import compose
    from dlrun.search.config import validate_tune

    with pytest.raises(ConfigError, match="the search space is empty"):
        validate_tune(compose("tune", ["space=empty"], [space]), ["space=empty"], [space])


def test_cli_tune_then_best_yaml_reruns_with_train(tmp_path: Path) -> None:
    run_dir = tmp_path / "search"
    out = dlrun(["tune", *SMALL, "debug=fast", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "re-run the best config: dlrun train --config-dir" in out.stdout
    best = json.loads((run_dir / "best_metrics.json").read_text())
    again = dlrun(["train", "--config-dir", str(run_dir), "--config-name", "best", "trainer.verbose=0",
                   f"hydra.run.dir={tmp_path / 'rerun'}"], tmp_path)
    assert again.returncode == 0, again.stderr
    saved = yaml.safe_load((tmp_path / "rerun" / "config.yaml").read_text())
    assert saved["model"]["units"] == [best["hyperparameters"]["model.units"]]
    assert saved["optimizer"]["learning_rate"] == pytest.approx(best["hyperparameters"]["optimizer.learning_rate"])
    assert saved["data"]["max_rows"] == 200  # the base config's values come along


def test_killed_search_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    run_dir = tmp_path / "search"
    args = ["tune", "space=units_lr", "search.max_trials=4", "search.refit=false", "debug=fast",
            "trainer.epochs=40", "regularization=none", "trainer.verbose=0", f"hydra.run.dir={run_dir}"]
    kill_when(args, tmp_path, run_dir, lambda table: len(table) >= 1)  # while the second trial runs
    before = pd.read_csv(run_dir / "trials.csv")
    assert 1 <= (before["status"] == "completed").sum() < 4
    resume_completes(args, tmp_path, run_dir, before, trials=4)


def test_grid_over_a_log_float_with_a_step_multiplies(tmp_path: Path) -> None:
    cfg = tune_config("search=grid", "space=units_lr", "+space.optimizer.learning_rate.step=10",
                      "~space.model.units", "+space.model.units={type:Fixed,value:16}", "search.refit=false")
    from dlrun.search.config import planned_trials
    from dlrun.search.runner import tune

    assert planned_trials(cfg) == 3
    trials = tune(cfg, tmp_path).trials
    assert sorted(trials["optimizer.learning_rate"]) == pytest.approx([1e-4, 1e-3, 1e-2])


def test_space_parsing_without_tensorflow() -> None:
    import subprocess as sp

    code = ("import sys\nfrom dlrun.config import compose\nfrom dlrun.search.config import validate_tune, "
            "planned_trials\nov=['search=grid','space=units_lr','+space.optimizer.learning_rate.step=10']\n"
            "t = validate_tune(compose('tune', ov), ov)\nprint(planned_trials(t), 'tensorflow' in sys.modules)\n")
    out = sp.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["48", "False"], out.stderr  # 3 learning rates x 16 widths


def test_impossible_shape_fails_the_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    space = write_space(tmp_path, "kernels", "model:\n  kernel_size: {type: Choice, values: [3, 12]}\n")
    from dlrun.config import compose
    from dlrun.search.config import validate_tune
    from dlrun.search.runner import tune

    ov = [*FAST, "model=cnn", "model.padding=valid", "model.filters=[4]", "model.units=[8]", "search=grid",
          "space=kernels", "search.refit=false"]
    result = tune(validate_tune(compose("tune", ov, [space]), ov, [space]), tmp_path / "run")
    trials = result.trials.set_index("model.kernel_size")
    assert trials.loc[3, "status"] == "completed"
    assert trials.loc[12, "status"] == "failed" and trials.loc[12, "failure_reason"]
    assert result.status == "completed" and result.best["hyperparameters"]["model.kernel_size"] == 3


def test_fit_time_keys_are_searchable(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "space=units_lr", "~space.model.units", "search=grid", "search.refit=false",
                      "~space.optimizer.learning_rate", "+space.trainer.batch_size={type:Choice,values:[16,64]}",
                      "+space.trainer.epochs={type:Choice,values:[1,2]}")
    trials = result.trials
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert sorted(trials["epochs_run"].tolist()) == [1, 1, 2, 2]
    params = dict(zip(trials["trainer.batch_size"], trials["params"]))
    assert set(params) == {16, 64}
