"""Diagnostics end to end on tiny models with known behaviour: each run's verdict,
its evidence and suggested overrides, the files it leaves, and repair."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dlrun.training import train
from tests.helpers import dlrun, make_run

DEEP_SIGMOID = ["diagnostics.enabled=true", "model.units=[32,32,32,32,32,32,32,32]", "model.activation=sigmoid",
                "model.initializer=glorot_uniform", "optimizer=sgd", "regularization=none"]


def verdict_of(result) -> tuple:
    m = result.metrics
    return m["verdict"], [f["problem"] for f in m["findings"]]


@pytest.fixture(scope="module")
def deep_sigmoid(tmp_path_factory):
    run = make_run(*DEEP_SIGMOID, "trainer.epochs=10", fast=False)
    return train(run, tmp_path_factory.mktemp("deep"))


def test_a_deep_sigmoid_stack_has_vanishing_gradients(deep_sigmoid) -> None:
    stats = pd.read_csv(deep_sigmoid.run_dir / "gradients.csv")
    last = stats[stats["epoch"] == stats["epoch"].max()].set_index("layer")["grad_norm"]
    assert last["dense_1"] < last["output"] / 100  # early layers get far smaller gradients
    verdict, problems = verdict_of(deep_sigmoid)
    assert verdict == "vanishing_gradients"
    finding = deep_sigmoid.metrics["findings"][0]
    assert "dense_1" in finding["evidence"] and "times the size of the output layer" in finding["evidence"]
    assert finding["overrides"][0] == ["model.activation=relu", "model.initializer=he_normal"]


def test_the_run_folder_holds_the_statistics_and_the_plot(deep_sigmoid) -> None:
    d = deep_sigmoid.run_dir
    stats = pd.read_csv(d / "gradients.csv")
    assert list(stats["epoch"].unique()) == list(range(0, 11))
    assert {"layer", "grad_norm", "weight_norm", "update_ratio", "dead_fraction", "saturated_fraction"} <= set(stats)
    assert (d / "gradients.png").stat().st_size > 0
    saved = json.loads((d / "metrics.json").read_text())
    assert saved["verdict"] == "vanishing_gradients" and saved["diagnostics_time_s"] >= 0


def test_a_huge_learning_rate_explodes_or_diverges(tmp_path: Path) -> None:
    run = make_run("diagnostics.enabled=true", "optimizer=sgd", "optimizer.learning_rate=50", "regularization=none", "trainer.epochs=8",
                   fast=False)
    result = train(run, tmp_path)
    verdict, _ = verdict_of(result)
    assert verdict in ("exploding_gradients", "diverged")
    assert "optimizer.learning_rate=5" in json.dumps(result.metrics["findings"])


def test_a_network_that_memorizes_a_small_subset_overfits(tmp_path: Path) -> None:
    run = make_run("diagnostics.enabled=true", "data.train_rows=60", "model.units=[256]", "optimizer.learning_rate=0.01", "regularization=none",
                   "trainer.epochs=150", fast=False)
    result = train(run, tmp_path)
    verdict, _ = verdict_of(result)
    assert verdict == "overfitting", result.metrics["findings"]
    evidence = result.metrics["findings"][0]["evidence"]
    assert "validation loss rose" in evidence and "60 training rows" in evidence


def test_a_healthy_default_run_is_ok(tmp_path: Path) -> None:
    result = train(make_run("diagnostics.enabled=true", "trainer.epochs=15", fast=False), tmp_path)
    assert verdict_of(result) == ("ok", [])


def test_diagnostics_are_off_by_default(tmp_path: Path) -> None:
    result = train(make_run(), tmp_path)
    assert "verdict" not in result.metrics and not (tmp_path / "gradients.csv").exists()


def test_repair_reruns_with_the_suggested_override_and_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = dlrun(["train", *DEEP_SIGMOID, "trainer.epochs=10", "trainer.verbose=0", "diagnostics.repair=true",
                 "diagnostics.max_repairs=1", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "diagnosis: vanishing_gradients" in out.stdout and "repair 1/1" in out.stdout
    attempt = run_dir / "repair_1"
    config = (attempt / "config.yaml").read_text()
    assert "activation: relu" in config and "initializer: he_normal" in config
    assert json.loads((attempt / "metrics.json").read_text())["verdict"] == "ok"
    report = (run_dir / "repair.md").read_text()
    assert "vanishing_gradients" in report and "model.activation=relu model.initializer=he_normal" in report
    assert "Repaired by attempt 1" in report
    listing = dlrun(["results", "--columns", "verdict", "--last", "2"], tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "vanishing_gradients" in listing.stdout and "ok" in listing.stdout


def test_static_warnings_before_training(tmp_path: Path) -> None:
    out = dlrun(["check", *DEEP_SIGMOID, "data=wine", "data.scaling=none", "model.initializer=zeros"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "8 hidden sigmoid layers" in out.stderr
    assert "inputs not scaled" in out.stderr and "proline" in out.stderr
    assert "model.initializer=zeros" in out.stderr
    assert "Nothing was trained" in out.stdout


def test_each_search_trial_gets_a_verdict_in_trials_csv(tmp_path: Path) -> None:
    run_dir = tmp_path / "search"
    out = dlrun(["tune", "search=random", "search.max_trials=2", "search.refit=false", "debug=fast",
                 "trainer.verbose=0", "logger=tensorboard", "diagnostics.enabled=true", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = pd.read_csv(run_dir / "trials.csv")
    assert trials["verdict"].notna().all()
    for trial in trials["trial"]:  # each trial's TensorBoard folder, with the HParams session
        assert list((run_dir / "tensorboard" / f"trial_{trial}").glob("events.out.tfevents.*"))
        assert (run_dir / "tensorboard" / f"trial_{trial}" / "train").is_dir()
    assert set(trials["verdict"]) <= {"ok", "diverged", "exploding_gradients", "vanishing_gradients", "dead_units",
                                      "saturated_units", "unstable", "underfitting", "overfitting"}
