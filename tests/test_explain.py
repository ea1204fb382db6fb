"""`dlrun explain RUN_DIR`: run folders of both families explained end to end, tune
folders through their best model, and every bad input answered in one line."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import ExplainConfig
from dlrun.errors import ConfigError, DataError, DlrunError
from tests.helpers import dlrun, make_run

TABULAR_FILES = ["permutation_importance.csv", "permutation_importance.png", "shap_importance.csv",
                 "shap_values.csv", "shap_summary.png", "lime.csv", "summary.md"]
IMAGE_FILES = ["saliency.png", "integrated_gradients.png", "integrated_gradients.csv", "grad_cam.png",
               "feature_visualization.png", "feature_visualization.csv", "summary.md"]


def write_shop_csv(path: Path, rows: int = 400, scale: float = 1.0) -> Path:
    """A table where `spend` depends on `visits` and the `plan` (text), not on `noise`."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"visits": rng.integers(0, 20, rows).astype(float),
                          "plan": rng.choice(["basic", "plus", "pro"], rows),
                          "noise": rng.normal(0, 1, rows)})
    bonus = frame["plan"].map({"basic": 0.0, "plus": 10.0, "pro": 30.0})
    frame["spend"] = (2.0 * frame["visits"] + bonus + rng.normal(0, 1, rows)) * scale
    frame.to_csv(path, index=False)
    return path


def train_run(run_dir: Path, *overrides: str) -> Path:
    from dlrun.training import train

    result = train(make_run(*overrides, fast=False), run_dir)
    assert result.status == "completed", result.metrics.get("failure_reason")
    return run_dir


@pytest.fixture(scope="module")
def shop_runs(tmp_path_factory) -> dict:
    """Two regression runs on the same table, the second with the target in units 1000x smaller."""
    root = tmp_path_factory.mktemp("shop")
    runs = {}
    for name, scale in (("units", 1.0), ("milli", 1000.0)):
        csv = write_shop_csv(root / f"shop_{name}.csv", scale=scale)
        runs[name] = train_run(root / name, "data=csv", f"data.path={csv}", "data.target=spend", "trainer.epochs=30",
                               "trainer.verbose=0", "optimizer.learning_rate=0.01")
    return runs


def test_a_regression_run_is_explained_in_the_targets_units(shop_runs) -> None:
    from dlrun.explain.task import explain

    results = {name: explain(run, ExplainConfig(methods=["permutation", "shap", "lime"], rows=[0, 1]))
               for name, run in shop_runs.items()}
    out = shop_runs["units"] / "explain"
    for name in TABULAR_FILES + ["lime_row0.png", "lime_row1.png"]:
        assert (out / name).is_file(), name
    perm = {n: pd.read_csv(r.out / "permutation_importance.csv").set_index("feature")["importance_mean"]
            for n, r in results.items()}
    # the source columns, not the one-hot columns: plan is one feature, and matters; noise does not
    assert set(perm["units"].index) == {"visits", "plan", "noise"}
    assert perm["units"]["noise"] < 0.2 * min(perm["units"]["visits"], perm["units"]["plan"])
    # target_scaling=standard trains the same model on both tables: the importances are the same
    # numbers in the target's units, so 1000x larger when the target is 1000x larger
    ratio = perm["milli"][["visits", "plan"]] / perm["units"][["visits", "plan"]]
    assert ratio.to_numpy() == pytest.approx([1000.0, 1000.0], rel=0.05)
    shap = pd.read_csv(out / "shap_importance.csv").set_index("feature")["mean_abs_shap"]
    assert set(shap.index) == {"visits", "plan", "noise"}
    assert (out / "shap_importance_encoded.csv").is_file()  # plan = basic / plus / pro, summed back to plan
    summary = (out / "summary.md").read_text()
    assert "permutation vs SHAP: Spearman" in summary and "test row 0" in summary


def test_lime_conditions_read_in_the_files_own_values(shop_runs) -> None:
    from dlrun.explain.task import explain

    explain(shop_runs["units"], ExplainConfig(methods=["lime"], rows=[3], out=str(shop_runs["units"] / "lime")))
    lime = pd.read_csv(shop_runs["units"] / "lime" / "lime.csv")
    assert set(lime["test_row"]) == {3}
    text = " ".join(lime["condition"])
    assert "plan" in text and "visits" in text
    assert any(cat in text for cat in ("basic", "plus", "pro"))  # a category by name, not a one-hot 0/1


@pytest.fixture(scope="module")
def digits_cnn_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("cnn") / "run", "experiment=digits_cnn", "data.max_rows=400",
                     "trainer.epochs=3", "trainer.verbose=0")


def test_an_image_run_gets_every_image_explanation(digits_cnn_run) -> None:
    from dlrun.explain.task import explain

    result = explain(digits_cnn_run, ExplainConfig(rows=[0, 1, 2, 3], steps=30, smooth_samples=5))
    assert result.kind == "image" and not result.failed
    for name in IMAGE_FILES:
        assert (digits_cnn_run / "explain" / name).is_file(), name
    ig = pd.read_csv(digits_cnn_run / "explain" / "integrated_gradients.csv")
    assert list(ig["test_row"]) == [0, 1, 2, 3]
    assert (ig["completeness_error"] < 0.01).all()
    assert set(ig["true"].astype(str)) <= {str(d) for d in range(10)}  # the class names


def test_tabular_methods_are_refused_for_an_image_model(digits_cnn_run) -> None:
    from dlrun.explain.task import explain

    with pytest.raises(ConfigError, match=r"explain.methods='shap': .*model=cnn.*use saliency"):
        explain(digits_cnn_run, ExplainConfig(methods=["shap"]))


def test_a_search_is_explained_through_its_best_model(tmp_path) -> None:
    from dlrun.explain.task import explain

    out = dlrun(["tune", "debug=fast", "search.max_trials=1", "trainer.verbose=0", "hydra.run.dir=search"],
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = explain(tmp_path / "search", ExplainConfig(methods=["permutation"], repeats=2))
    assert result.search
    assert "best model of the search" in (tmp_path / "search" / "explain" / "summary.md").read_text()
    assert len(pd.read_csv(tmp_path / "search" / "explain" / "permutation_importance.csv")) == 64  # pixels


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    csv = write_shop_csv(root / "shop.csv", rows=120)
    return train_run(root / "run", "data=csv", f"data.path={csv}", "data.target=spend", "trainer.epochs=2",
                     "trainer.verbose=0")


def copy_run(run: Path, where: Path) -> Path:
    shutil.copytree(run, where)
    return where


def test_the_cli_answers_bad_input_in_one_line(tmp_path, small_run) -> None:
    cases = [
        ([str(tmp_path / "nowhere")], "no such run folder"),
        ([str(tmp_path)], "not a dlrun run folder"),
        ([str(small_run), "explain.methods=[grad_cam]"], "needs a convolutional layer"),
        ([str(small_run), "explain.rows=[5000]"], "out of range: the test split has 24 rows"),
        ([str(small_run), "explain.method=[shap]"], "did you mean 'methods'"),
    ]
    for args, message in cases:
        out = dlrun(["explain", *args], cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (small_run / "explain").exists()  # nothing half-written


def test_a_run_without_its_model_is_refused(tmp_path, small_run) -> None:
    from dlrun.explain.task import explain

    run = copy_run(small_run, tmp_path / "run")
    (run / "model.keras").unlink()
    with pytest.raises(DlrunError, match="the run has no model.keras"):
        explain(run, ExplainConfig())


def test_moved_data_says_how_to_point_to_it(tmp_path, small_run) -> None:
    from dlrun.explain.task import explain

    run = copy_run(small_run, tmp_path / "run")
    old = str(small_run.parent / "shop.csv")
    moved = tmp_path / "moved.csv"
    shutil.copy(old, moved)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(old, str(tmp_path / "gone.csv")))
    with pytest.raises(DataError, match=r"gone.csv is gone \(moved or deleted\); point to it with .*data.path=FILE"):
        explain(run, ExplainConfig(methods=["permutation"]))
    assert not (run / "explain").exists()
    result = explain(run, ExplainConfig(methods=["permutation"], repeats=1), {"path": str(moved)})
    assert (result.out / "permutation_importance.csv").is_file()


def test_changed_data_is_refused(tmp_path, small_run) -> None:
    from dlrun.explain.task import explain

    csv = tmp_path / "shop.csv"
    frame = pd.read_csv(small_run.parent / "shop.csv")
    frame.loc[5, "visits"] += 1  # same rows, one value edited
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError, match="changed since the run: same row counts, other values"):
        explain(small_run, ExplainConfig(methods=["permutation"]), {"path": str(csv)})
    frame.iloc[:100].to_csv(csv, index=False)  # rows removed
    with pytest.raises(DataError, match=r"it now splits into .* rows, the run had 84/12/24"):
        explain(small_run, ExplainConfig(methods=["permutation"]), {"path": str(csv)})
    result = explain(small_run, ExplainConfig(methods=["permutation"], repeats=1, check_data=False,
                                              out=str(tmp_path / "anyway")), {"path": str(csv)})
    assert (result.out / "permutation_importance.csv").is_file()
    assert not (small_run / "explain").exists()


def test_only_data_path_may_change() -> None:
    from dlrun.explain.source import parse_options

    options, data = parse_options(["explain.rows=[1,2]", "data.path=x.csv"])
    assert options.rows == [1, 2] and data == {"path": "x.csv"}
    with pytest.raises(ConfigError, match="only data.path=FILE"):
        parse_options(["data.target=y"])
    with pytest.raises(ConfigError, match="explain.rows"):
        parse_options(["explain.rows=[-1]"])


def test_auto_rows_include_a_misclassified_row() -> None:
    from types import SimpleNamespace

    from dlrun.explain.task import auto_rows

    truth = np.array([0, 1, 0, 1, 1, 0])
    guess = np.array([0, 1, 1, 1, 0, 0])  # rows 2 and 4 wrong
    fake = SimpleNamespace(task="multiclass", classes=["a", "b"], x_test=np.zeros((6, 1)), y_test=truth,
                           outputs=lambda x: np.eye(2)[guess], predicted=lambda out: out.argmax(axis=1))
    assert auto_rows(fake, 3) == [2, 0, 1]  # the first wrong one, then one right per class


def test_rank_agreement_on_known_numbers() -> None:
    from dlrun.explain.report import rank_agreement

    a = pd.Series({"x": 3.0, "y": 2.0, "z": 1.0, "w": 0.0})
    found = rank_agreement(a, pd.Series({"x": 30.0, "y": 20.0, "z": 10.0, "w": 0.0}), top=2)
    assert found == {"spearman": pytest.approx(1.0), "top_shared": 2, "top": 2}
    found = rank_agreement(a, pd.Series({"x": 0.0, "y": 1.0, "z": 2.0, "w": 3.0}), top=2)
    assert found["spearman"] == pytest.approx(-1.0) and found["top_shared"] == 0
