"""dlrun compare: every preset runs (fast mode) and writes the comparison, the runs and
the plots; resume keeps finished runs; a failing contender is reported and the study
finishes; Ctrl-C leaves a valid partial comparison; bad settings are one line, exit 2,
before any folder exists. (The statistics are tested on known numbers in
test_study_statistics.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dlrun.cli import main
from tests.helpers import dlrun

PRESETS = {"optimizer_comparison": 10, "regularization_comparison": 9, "learning_rate_sweep": 6,
           "batch_size_comparison": 5, "cart_abandonment": 4, "vanishing_gradients": 6, "exploding_gradients": 4,
           "attention_comparison": 3, "attention_comparison_digits": 3}
PLOTS = ("curves_epochs.png", "curves_seconds.png", "final_metric.png", "train_vs_val.png")


def compare(tmp_path: Path, *overrides: str, folder: str = "study") -> int:
    return main(["compare", "debug=fast", *overrides, f"hydra.run.dir={tmp_path / folder}"])


def read(study: Path):
    return pd.read_csv(study / "comparison.csv"), pd.read_csv(study / "runs.csv"), \
        json.loads((study / "study.json").read_text())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_writes_comparison_runs_and_plots(tmp_path, preset):
    seeds = 2 if preset == "learning_rate_sweep" else 1
    assert compare(tmp_path, f"experiment={preset}", f"study.seeds={seeds}") == 0
    study = tmp_path / "study"
    comparison, runs, state = read(study)
    assert len(comparison) == PRESETS[preset] and comparison["contender"].is_unique
    assert len(runs) == PRESETS[preset] * seeds and set(runs["phase"]) == {"final"}
    assert state["status"] == "completed" and state["runs"]["trained"] == PRESETS[preset] * seeds
    for name in ("comparison.md", "comparison.parquet", *PLOTS):
        assert (study / name).stat().st_size > 0, name
    for run_dir in runs["run_dir"]:  # every run is an ordinary run folder
        assert json.loads((Path(run_dir) / "metrics.json").read_text())["status"] in ("completed", "failed")
    ranked = comparison.dropna(subset=["rank"])
    assert ranked["rank"].is_monotonic_increasing and ranked["rank"].iloc[0] == 1
    if preset == "cart_abandonment":
        assert set(comparison["metric"]) == {"test_auc"}
    if preset == "vanishing_gradients":  # every run has gradient statistics: the depth figure and verdicts
        assert (study / "gradient_depth.png").stat().st_size > 0 and comparison["verdicts"].notna().all()
    if preset == "learning_rate_sweep":  # two seeds: an interval around each mean
        done = comparison[comparison["n"] == 2]
        assert len(done) >= 4 and done["ci_low"].notna().all()
        assert (done["ci_low"] <= done["mean"]).all() and (done["mean"] <= done["ci_high"]).all()


def test_runs_are_registered_with_their_contender(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRUN_HOME", str(tmp_path / "home"))
    assert compare(tmp_path, "experiment=optimizer_comparison", "study.only=[sgd,adam]", "study.seeds=2") == 0
    from dlrun.results import registry

    entries = registry.entries(tmp_path / "home")
    assert sorted(e["tags"]["contender"] for e in entries) == ["adam", "adam", "sgd", "sgd"]
    assert {e["tags"]["study"] for e in entries} == {str((tmp_path / "study").resolve())}
    assert {e["seed"] for e in entries} == {0, 1} and {e["name"] for e in entries} == {"optimizer_comparison"}


def test_the_same_command_resumes_and_keeps_finished_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["compare", "experiment=optimizer_comparison", "debug=fast", "study.only=[sgd,adam]"]
    assert main([*args, "study.seeds=1"]) == 0
    [study] = list((tmp_path / "experiments" / "optimizer_comparison").iterdir())
    first = {p: p.stat().st_mtime_ns for p in study.glob("runs/*/seed0/metrics.json")}
    assert len(first) == 2
    assert main([*args, "study.seeds=2"]) == 0  # more seeds: the same study, extended
    assert list((tmp_path / "experiments" / "optimizer_comparison").iterdir()) == [study]
    assert {p: p.stat().st_mtime_ns for p in study.glob("runs/*/seed0/metrics.json")} == first
    comparison, runs, state = read(study)
    assert state["runs"] == {"planned": 4, "finished": 4, "kept": 2, "trained": 2}
    # contenders study.only left out are in the comparison too, as not run yet
    assert len(comparison) == 10 and (comparison.set_index("contender").loc[["sgd", "adam"], "n"] == 2).all()
    assert (comparison.set_index("contender").drop(["sgd", "adam"])["status"] == "pending").all()
    assert main([*args, "study.seeds=2", "study.resume=false"]) == 0  # asked for a fresh study
    assert len(list((tmp_path / "experiments" / "optimizer_comparison").iterdir())) == 2


def test_a_failing_contender_is_reported_and_the_study_finishes(tmp_path, monkeypatch, capsys):
    import dlrun.training

    real = dlrun.training.train

    def train(run, run_dir=None, **kwargs):
        if run.optimizer.learning_rate == 0.123:
            raise RuntimeError("out of memory (simulated)")
        return real(run, run_dir, **kwargs)

    monkeypatch.setattr(dlrun.training, "train", train)
    contenders = ('study.contenders={ok:["optimizer=adam"],diverges:["optimizer=sgd","optimizer.learning_rate=1e12"],'
                  'crashes:["optimizer.learning_rate=0.123"]}')
    assert compare(tmp_path, contenders, "study.seeds=2") == 0
    comparison, runs, _ = read(tmp_path / "study")
    rows = comparison.set_index("contender")
    assert rows.loc["ok", "status"] == "completed" and rows.loc["ok", "rank"] == 1
    assert rows.loc["diverges", "status"] == "failed" and "NaN" in rows.loc["diverges", "reason"]
    assert rows.loc["crashes", "status"] == "failed" and "out of memory" in rows.loc["crashes", "reason"]
    assert pd.isna(rows.loc["crashes", "rank"]) and rows.loc["crashes", "failed"] == 2
    assert "RuntimeError" in (Path(runs[runs["contender"] == "crashes"]["run_dir"].iloc[0]) / "error.txt").read_text()
    out = capsys.readouterr().out
    assert "crashes failed: RuntimeError: out of memory" in out and "diverges failed" in out


def test_ctrl_c_leaves_a_partial_comparison_that_a_rerun_finishes(tmp_path, monkeypatch):
    import dlrun.training

    real, calls = dlrun.training.train, []

    def train(run, run_dir=None, **kwargs):
        calls.append(run_dir)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(run, run_dir, **kwargs)

    monkeypatch.setattr(dlrun.training, "train", train)
    args = ("experiment=optimizer_comparison", "study.only=[sgd,adam]", "study.seeds=2")
    assert compare(tmp_path, *args) == 130
    study = tmp_path / "study"
    comparison, runs, state = read(study)
    assert state["status"] == "interrupted" and state["runs"]["finished"] == 2
    assert "partial" in (study / "comparison.md").read_text()
    assert set(comparison.set_index("contender").loc[["sgd", "adam"], "n"]) == {1}
    monkeypatch.setattr(dlrun.training, "train", real)
    assert compare(tmp_path, *args) == 0
    comparison, runs, state = read(study)
    assert state["status"] == "completed" and state["runs"]["kept"] == 2 and state["runs"]["trained"] == 2
    assert set(comparison.set_index("contender").loc[["sgd", "adam"], "n"]) == {2}


def test_tune_lr_picks_the_best_rate_on_validation_and_reuses_its_run(tmp_path):
    assert compare(tmp_path, "experiment=optimizer_comparison", "study.only=[sgd]", "study.seeds=2",
                   "study.tune_lr=true", "study.lr_grid=[0.0001,0.3]", "trainer.epochs=3") == 0
    study = tmp_path / "study"
    comparison, runs, state = read(study)
    grid = runs[runs["phase"] == "lr_search"]
    best = grid.loc[grid["val_accuracy"].idxmax(), "learning_rate"]
    final = runs[(runs["phase"] == "final") & (runs["contender"] == "sgd")]
    assert set(final["learning_rate"]) == {best}
    assert comparison.set_index("contender").loc["sgd", "learning_rate"] == best
    seed0 = final[final["seed"] == 0]["run_dir"].iloc[0]
    assert seed0 == grid[grid["learning_rate"] == best]["run_dir"].iloc[0]  # not trained twice
    assert state["runs"]["trained"] == 3
    assert (study / "lr_sensitivity.png").stat().st_size > 0


@pytest.mark.parametrize("override, words", [
    ('study.contenders={x:["optimizer=adamm"]}', ["study.contenders.x", "did you mean 'adam'"]),
    ("study.metric=test_acc", ["study.metric", "did you mean 'test_accuracy'"]),
    ("study.only=[adan]", ["study.only", "did you mean 'adam'"]),
    ("study.seeds=0", ["study.seeds", ">= 1"]),
])
def test_bad_study_settings_are_one_line_before_any_folder(tmp_path, override, words):
    out = dlrun(["compare", "experiment=optimizer_comparison", override], tmp_path)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert all(w in out.stderr for w in words), out.stderr
    assert not (tmp_path / "experiments").exists()


def test_a_study_without_contenders_says_how_to_name_them(tmp_path, capsys):
    assert main(["compare", f"hydra.run.dir={tmp_path / 's'}"]) == 2
    assert "experiment=optimizer_comparison" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_folder_holding_another_study_is_refused(tmp_path, capsys):
    assert compare(tmp_path, "experiment=learning_rate_sweep", "study.only=[lr_0.01]", "study.seeds=1") == 0
    assert compare(tmp_path, "experiment=optimizer_comparison", "study.only=[sgd]", "study.seeds=1") == 2
    assert "holds another study" in capsys.readouterr().err


def test_a_contender_whose_whole_lr_grid_fails_is_failed_and_the_others_go_on(tmp_path, monkeypatch):
    import dlrun.training

    real = dlrun.training.train

    def train(run, run_dir=None, **kwargs):
        if "bad" in Path(run_dir).parts:
            raise RuntimeError("simulated crash")
        return real(run, run_dir, **kwargs)

    monkeypatch.setattr(dlrun.training, "train", train)
    assert compare(tmp_path, 'study.contenders={bad:["optimizer=sgd"],ok:["optimizer=adam"]}', "study.seeds=2",
                   "study.tune_lr=true", "study.lr_grid=[0.001,0.01]") == 0
    comparison, runs, state = read(tmp_path / "study")
    rows = comparison.set_index("contender")
    assert rows.loc["bad", "status"] == "failed" and "every learning rate" in rows.loc["bad", "reason"]
    assert rows.loc["ok", "status"] == "completed" and rows.loc["ok", "n"] == 2
    assert rows.loc["ok", "learning_rate"] in (0.001, 0.01)
