"""Fused study runs (study.fuse=K): the runs of a seed that can share a graph train as
branches of one model, each still an ordinary run folder with its own results, equal to
its unfused run; runs that cannot share one train alone; a run that fails fails alone;
Ctrl-C mid-group leaves a partial study that a rerun finishes."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dlrun.study.fused import plan_groups
from tests.helpers import dlrun
from tests.test_compare import compare, read

TRIO = ("experiment=optimizer_comparison", "study.only=[gd,sgd,adam,rmsprop]", "study.seeds=1")


def test_groups_keep_keys_apart_and_split_evenly() -> None:
    assert plan_groups(["a"] * 9, 8) == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]  # not 8 and a lone 1
    assert plan_groups(["a", "b", None, "a", "b", "a"], 2) == [[0, 3], [1, 4], [2], [5]]
    assert plan_groups(["a"] * 3, 1) == [[0], [1], [2]]
    assert plan_groups([], 4) == []


def test_fused_runs_equal_their_unfused_runs_and_stay_ordinary_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRUN_HOME", str(tmp_path / "home"))
    assert compare(tmp_path, *TRIO, folder="alone") == 0
    assert compare(tmp_path, *TRIO, "study.fuse=4", folder="fused") == 0
    _, alone, _ = read(tmp_path / "alone")
    comparison, fused, state = read(tmp_path / "fused")
    fused, alone = fused[fused["status"] != "pending"], alone[alone["status"] != "pending"]  # study.only
    assert state["runs"]["trained"] == 4 and len(fused) == 4 and (fused["status"] == "completed").all()
    merged = alone.merge(fused, on=["contender", "seed"], suffixes=("_alone", "_fused"))
    for name in ("test_accuracy", "val_accuracy"):  # same seed, batches and initial weights
        assert (merged[f"{name}_alone"] - merged[f"{name}_fused"]).abs().max() < 0.02, merged
    metrics = {c: json.loads((tmp_path / "fused" / "runs" / c / "seed0" / "metrics.json").read_text())
               for c in ("gd", "sgd", "adam", "rmsprop")}
    assert sorted(metrics["adam"]["fused_with"]) == ["runs/rmsprop/seed0", "runs/sgd/seed0"]
    assert "fused_with" not in metrics["gd"]  # full-batch GD reads other batches: trained alone
    for contender in ("sgd", "adam", "rmsprop"):
        run_dir = tmp_path / "fused" / "runs" / contender / "seed0"
        assert {"model.keras", "history.csv", "learning_curves.png", "config.yaml"} <= {p.name for p in
                                                                                         run_dir.iterdir()}
        assert len(pd.read_csv(run_dir / "history.csv")) == metrics[contender]["epochs_run"]
    from dlrun.results import registry

    entries = [e for e in registry.entries(tmp_path / "home") if "/fused/runs/" in e["run_dir"]]
    assert len(entries) == 4 and {e["status"] for e in entries} == {"completed"}
    assert "study.fuse" in (tmp_path / "fused" / "comparison.md").read_text()  # its seconds are the group's


def test_a_diverging_or_crashing_run_fails_alone(tmp_path, monkeypatch):
    import dlrun.training

    real = dlrun.training.compile_model

    def compile_model(run, meta, steps):
        if run.optimizer.learning_rate == 0.123:
            raise RuntimeError("cannot build (simulated)")
        return real(run, meta, steps)

    monkeypatch.setattr(dlrun.training, "compile_model", compile_model)
    contenders = ('study.contenders={ok:["optimizer=adam"],diverges:["optimizer=sgd","optimizer.learning_rate=1e12"],'
                  'crashes:["optimizer.learning_rate=0.123"]}')
    assert compare(tmp_path, contenders, "study.seeds=1", "study.fuse=3") == 0
    comparison, runs, _ = read(tmp_path / "study")
    rows = comparison.set_index("contender")
    assert rows.loc["ok", "status"] == "completed" and rows.loc["ok", "rank"] == 1
    assert rows.loc["diverges", "status"] == "failed" and "NaN" in rows.loc["diverges", "reason"]
    assert rows.loc["crashes", "status"] == "failed" and "cannot build" in rows.loc["crashes", "reason"]
    ok = json.loads((tmp_path / "study" / "runs" / "ok" / "seed0" / "metrics.json").read_text())
    assert ok["fused_with"] == ["runs/diverges/seed0"]  # trained with the diverging run, unharmed


def test_tune_lr_fuses_the_grid_and_reuses_its_run(tmp_path):
    assert compare(tmp_path, "experiment=optimizer_comparison", "study.only=[sgd,adam]", "study.seeds=2",
                   "study.tune_lr=true", "study.lr_grid=[0.0001,0.3]", "trainer.epochs=3", "study.fuse=auto") == 0
    comparison, runs, state = read(tmp_path / "study")
    assert state["runs"]["trained"] == 6  # 2 x 2 grid runs, then seed 1 of each
    grid = runs[runs["phase"] == "lr_search"]
    fused_with = json.loads((Path(grid["run_dir"].iloc[0]) / "metrics.json").read_text())["fused_with"]
    assert len(fused_with) == 3  # the whole grid of both contenders, one graph
    for contender in ("sgd", "adam"):
        mine = grid[grid["contender"] == contender]
        best = mine.loc[mine["val_accuracy"].idxmax(), "learning_rate"]
        assert comparison.set_index("contender").loc[contender, "learning_rate"] == best


def test_ctrl_c_mid_group_leaves_a_partial_study_that_a_rerun_finishes(tmp_path, monkeypatch):
    from dlrun.fusion import branches

    real = branches.FusedBranches.fit

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("DLRUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(branches.FusedBranches, "fit", interrupted)
    args = ("experiment=optimizer_comparison", "study.only=[sgd,adam]", "study.seeds=1", "study.fuse=2")
    assert compare(tmp_path, *args) == 130
    comparison, runs, state = read(tmp_path / "study")
    assert state["status"] == "interrupted" and state["runs"]["finished"] == 0
    for contender in ("sgd", "adam"):
        metrics = json.loads((tmp_path / "study" / "runs" / contender / "seed0" / "metrics.json").read_text())
        assert metrics["status"] == "interrupted"
    from dlrun.results import registry

    assert {e["status"] for e in registry.entries(tmp_path / "home")} == {"interrupted"}
    monkeypatch.setattr(branches.FusedBranches, "fit", real)
    assert compare(tmp_path, *args) == 0
    comparison, runs, state = read(tmp_path / "study")
    assert state["status"] == "completed" and state["runs"]["trained"] == 2
    assert (comparison.set_index("contender").loc[["sgd", "adam"], "n"] == 1).all()


@pytest.mark.parametrize("value", ["0", "two", "true"])
def test_bad_fuse_is_one_line_before_any_folder(tmp_path, value):
    out = dlrun(["compare", *TRIO, f"study.fuse={value}"], tmp_path)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "study.fuse" in out.stderr, out.stderr
    assert not (tmp_path / "experiments").exists()


def test_a_group_that_fails_as_a_whole_trains_each_run_alone(tmp_path, monkeypatch, capsys):
    from dlrun.fusion import branches

    def broken(self, *args, **kwargs):
        raise RuntimeError("graph too large (simulated)")

    monkeypatch.setattr(branches.FusedBranches, "fit", broken)
    assert compare(tmp_path, "experiment=optimizer_comparison", "study.only=[sgd,adam]", "study.seeds=1",
                   "study.fuse=2") == 0
    comparison, runs, state = read(tmp_path / "study")
    assert state["runs"]["trained"] == 2 and (comparison.set_index("contender").loc[["sgd", "adam"], "n"] == 1).all()
    for run_dir in runs["run_dir"].dropna():
        assert "fused_with" not in json.loads((Path(run_dir) / "metrics.json").read_text())
    assert "training them one at a time" in capsys.readouterr().err
