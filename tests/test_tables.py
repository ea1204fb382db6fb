"""Real tables: target scaling (results in the target's units), columns that cannot
help, imbalanced classes (metrics, baseline, class weights, resampling, threshold)
and `dlrun predict` on new rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.classification import (baseline_verdict, best_threshold, class_weight_codes, class_weights,
                                  majority_baseline, mean_baseline, threshold_scores)
from dlrun.config.schema import DataConfig
from dlrun.data import build_data
from dlrun.data.columns import too_many_values
from dlrun.data.encoders import HashEncoder, bucket
from dlrun.data.prepare import prepare
from dlrun.errors import ConfigError, DataError
from tests.helpers import dlrun, make_run, write_people_csv


def offset_table(path: Path, rows: int = 600, seed: int = 0) -> Path:
    """A regression table whose target is 1,000 plus a small signal (sd about 2)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows),
                          "city": rng.choice(["Oslo", "Rome", "Lima"], rows)})
    frame["y"] = (1000.0 + 1.5 * frame["x1"] - np.sin(2 * frame["x2"]) + 0.8 * (frame["city"] == "Rome")
                  + rng.normal(0, 0.2, rows))
    frame.to_csv(path, index=False)
    return path


def prepared(frame: pd.DataFrame, target: str = "label", **kw):
    return prepare(frame.copy(), target, "auto", DataConfig(name="csv", path="unused.csv", target=target, **kw))


# ------------------------------------------------------------ target scaling
def test_target_scaler_is_fitted_on_the_training_split(tmp_path: Path) -> None:
    b = build_data(DataConfig(name="csv", path=str(offset_table(tmp_path / "t.csv")), target="y"))
    mean, std = b.meta.target_scale
    assert mean == pytest.approx(float(np.mean(b.y_train)), rel=1e-6)
    assert std == pytest.approx(float(np.std(b.y_train)), rel=1e-5)
    assert b.y_train.mean() > 990  # the arrays stay in the target's own units
    none = build_data(DataConfig(name="csv", path=str(tmp_path / "t.csv"), target="y", target_scaling="none"))
    assert none.meta.target_scale is None


def test_scaled_loss_acts_in_standard_deviations() -> None:
    """Huber's delta is in standard deviations of the training target when it is scaled."""
    from dlrun.losses import build_loss

    run = make_run("data=diabetes", "loss=huber", "loss.delta=1.0")
    meta = build_data(run.data).meta
    mean, std = meta.target_scale
    loss = build_loss(run, meta)
    y_true = np.array([[mean]], dtype="float32")
    # an error of half a standard deviation is in Huber's quadratic zone: 0.5 * 0.5**2
    assert float(loss(y_true, y_true + 0.5 * std)) == pytest.approx(0.125, rel=1e-4)
    # msle needs non-negative values: it stays in the target's units
    msle = build_loss(make_run("data=diabetes", "loss=msle"), meta)
    assert type(msle).__name__ == "MeanSquaredLogarithmicError"


def test_offset_target_round_trips_in_its_own_units(tmp_path: Path) -> None:
    """Metrics, history, the saved model and `dlrun predict` all answer in the target's units."""
    keras = pytest.importorskip("keras")
    from dlrun.training import train

    path = offset_table(tmp_path / "offset.csv")
    run = make_run("data=csv", f"data.path={path}", "data.target=y", "trainer.epochs=60", "trainer.verbose=0",
                   fast=False)
    result = train(run, tmp_path / "run")
    b = build_data(run.data)
    model = keras.models.load_model(tmp_path / "run" / "model.keras")  # no dlrun objects needed
    pred = model.predict(b.x_test, verbose=0).ravel()
    assert 995 < pred.mean() < 1005
    mae = float(np.mean(np.abs(pred - b.y_test)))
    assert result.metrics["test"]["mae"] == pytest.approx(mae, rel=1e-3)
    assert result.metrics["test"]["mae"] < 0.5  # the signal's sd is about 2
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["val_mae"].iloc[-1] < 1.0
    assert result.metrics["baseline"]["mae"] > 1.0  # the mean predictor, in the same units
    new = pd.read_csv(path).drop(columns="y").iloc[:5]
    new.to_csv(tmp_path / "new.csv", index=False)
    out = dlrun(["predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")],
                tmp_path)
    assert out.returncode == 0, out.stderr
    written = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(written["predicted_y"], model.predict(
        build_x(tmp_path / "run", new), verbose=0).ravel(), rtol=1e-5)
    assert written["predicted_y"].between(990, 1010).all()


def build_x(run_dir: Path, frame: pd.DataFrame) -> np.ndarray:
    from dlrun.data.saved import load

    info = load(run_dir)
    return info["transformer"].transform(frame[info["columns"]]).astype("float32")


def test_offset_table_reaches_the_sklearn_mlp(tmp_path: Path) -> None:
    """dlrun's defaults on a target of 1,000 +- 2 come within 10% of scikit-learn's MLPRegressor
    (its target scaled too, the fair peer) on the same split."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    from dlrun.training import train

    path = offset_table(tmp_path / "offset.csv", rows=1000)
    run = make_run("data=csv", f"data.path={path}", "data.target=y", "trainer.verbose=0", fast=False)
    b = build_data(run.data)
    peer = TransformedTargetRegressor(MLPRegressor(random_state=0, max_iter=500, early_stopping=True),
                                      transformer=StandardScaler())
    peer.fit(np.concatenate([b.x_train, b.x_val]), np.concatenate([b.y_train, b.y_val]))
    peer_mae = float(np.mean(np.abs(peer.predict(b.x_test) - b.y_test)))
    ours = train(run, tmp_path / "run").metrics["test"]["mae"]
    assert ours <= 1.10 * peer_mae, (ours, peer_mae)


# ------------------------------------------------------------ columns
def test_too_many_values_rule() -> None:
    assert too_many_values(30, 30, 50).startswith("30 distinct values in 30 rows")  # names each row
    assert too_many_values(60, 1000, 50).endswith("more than data.max_categories=50")
    assert too_many_values(12, 12, 50) == ""  # a tiny table's categories are spared
    assert too_many_values(40, 1000, 50) == ""


def people_with_ids(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"name": [f"Person {i}" for i in range(rows)],
                          "ticket": [f"T{rng.integers(0, 70)}" for _ in range(rows)],
                          "city": rng.choice(["Paris", "Rome"], rows), "age": rng.normal(40, 9, rows),
                          "const": "same", "label": rng.choice(["yes", "no"], rows)})
    return frame


def test_id_like_and_high_cardinality_columns_are_dropped_and_reported() -> None:
    b = prepared(people_with_ids(), max_categories=30)
    assert b.meta.feature_names == ["age", "city_Paris", "city_Rome"]
    dropped = {d["column"]: d["reason"] for d in b.meta.report["dropped_columns"]}
    assert dropped["name"].startswith("120 distinct values in 120 rows")
    assert "data.max_categories=30" in dropped["ticket"]
    assert dropped["const"].startswith("constant")
    assert any("'name' dropped" in n and "data.high_cardinality=ordinal or hash" in n for n in b.meta.notes)


def test_high_cardinality_can_be_kept_or_refused() -> None:
    frame = people_with_ids()
    hashed = prepared(frame, max_categories=30, high_cardinality="hash", hash_buckets=4, drop_constant=False)
    assert [n for n in hashed.meta.feature_names if n.startswith("name#")] == [f"name#{k}" for k in range(4)]
    assert "const_same" in hashed.meta.feature_names
    ordinal = prepared(frame, max_categories=30, high_cardinality="ordinal")
    assert {"name", "ticket"} <= set(ordinal.meta.feature_names)
    col = ordinal.x_train[:, ordinal.meta.feature_names.index("name")]
    assert abs(col.mean()) < 1e-5 and col.std() == pytest.approx(1.0, rel=1e-3)  # codes are scaled too
    with pytest.raises(DataError, match=r"text column 'name' has 120 distinct values .*data.high_cardinality"):
        prepared(frame, max_categories=30, high_cardinality="error")


def test_hash_encoder_is_stable_and_per_column() -> None:
    enc = HashEncoder(8).fit(pd.DataFrame({"a": ["x"], "b": ["x"]}))
    out = enc.transform(pd.DataFrame({"a": ["x", None], "b": ["x", "y"]}))
    assert out.shape == (2, 16) and out[0].sum() == 2 and out[1].sum() == 1
    assert out[0, bucket("x", 8)] == 1 and out[0, 8 + bucket("x", 8)] == 1
    assert bucket("x", 8) == 3  # CRC-32 of "x" is 0x8CDC1683: the same in every process


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("a,b,a,label\n1,2,3,x\n4,5,6,y\n")
    with pytest.raises(DataError, match=r"column names must be unique; repeated: 'a' \(2 times\)"):
        build_data(DataConfig(name="csv", path=str(tmp_path / "dup.csv"), target="label"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4]), pa.array(["x", "y"])],
                                        names=["a", "a", "label"]), tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="column names must be unique"):
        build_data(DataConfig(name="csv", path=str(tmp_path / "dup.parquet"), target="label"))


def test_dropped_columns_are_warned_at_the_terminal(tmp_path: Path) -> None:
    people_with_ids().to_csv(tmp_path / "p.csv", index=False)
    out = dlrun(["check", "data=csv", "data.path=p.csv", "data.target=label", "data.max_categories=30"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "text column 'name' dropped: 120 distinct values in 120 rows" in out.stderr
    assert "dropped columns" in out.stdout and "name" in out.stdout


# ------------------------------------------------------------ imbalance
def test_class_weights() -> None:
    y = np.array([0] * 90 + [1] * 10)
    assert class_weights("none", ["no", "yes"], y) is None
    assert class_weights("balanced", ["no", "yes"], y) == pytest.approx({0: 100 / 180, 1: 100 / 20})
    assert class_weight_codes({"yes": 5}, ["no", "yes"]) == {0: 1.0, 1: 5.0}
    assert class_weight_codes({1: 3}, [0, 1]) == {0: 1.0, 1: 3.0}  # YAML keys match labels as text
    with pytest.raises(ConfigError, match=r"trainer.class_weight.yse=.*no such class.*did you mean 'yes'"):
        class_weight_codes({"yse": 5}, ["no", "yes"])


def test_best_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.9])
    assert best_threshold(y, scores) == pytest.approx(0.4)  # both positives, no negative above it
    assert threshold_scores(y, scores, 0.4) == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    at_half = threshold_scores(y, scores, 0.5)
    assert at_half["recall"] == 0.5 and at_half["precision"] == 1.0 and at_half["f1"] == pytest.approx(2 / 3)
    assert best_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3])) == 0.5


def test_baselines() -> None:
    base = majority_baseline(np.array([0, 0, 0, 1]), np.array([0, 1, 0, 0, 0]), ["No", "Yes"])
    assert base == {"majority_class": "No", "majority_rate": 0.8}
    ok, text = baseline_verdict("binary", base, {"accuracy": 0.78})
    assert not ok and "does not beat" in text and "'No'" in text
    assert baseline_verdict("binary", base, {"accuracy": 0.9})[0]
    mean = mean_baseline(np.array([1.0, 3.0]), np.array([2.0, 4.0]))
    assert mean == {"mean_prediction": 2.0, "mae": 1.0}
    assert not baseline_verdict("regression", mean, {"mae": 1.5})[0]


def test_resampling_changes_the_training_split_only() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400),
                          "label": np.where(np.arange(400) % 10 == 0, "rare", "common")})
    plain = prepared(frame)
    for method, rows in (("oversample", 2 * np.bincount(plain.y_train).max()),
                         ("undersample", 2 * np.bincount(plain.y_train).min())):
        b = prepared(frame, resample=method)
        assert len(b.y_train) == rows and np.bincount(b.y_train)[0] == np.bincount(b.y_train)[1]
        np.testing.assert_array_equal(b.x_val, plain.x_val)
        np.testing.assert_array_equal(b.x_test, plain.x_test)
        np.testing.assert_array_equal(b.y_test, plain.y_test)
        assert b.meta.report["resampled"]["class_counts_after"] == {"common": rows // 2, "rare": rows // 2}
    with pytest.raises(DataError, match="data.resample=oversample: resampling balances classes"):
        prepared(frame.assign(label=rng.normal(size=400)), resample="oversample")


def test_class_weights_weigh_training_rows_only() -> None:
    pytest.importorskip("tensorflow")
    from dlrun.training import make_datasets, setup_runtime

    run = make_run("data=breast_cancer", "trainer.class_weight={0:4.0,1:1.0}")
    setup_runtime(run.trainer)
    bundle = build_data(run.data)
    data = make_datasets(bundle, run, "binary_crossentropy")
    x, y, w = next(iter(data.train))
    np.testing.assert_allclose(w.numpy(), np.where(y.numpy().ravel() == 0, 4.0, 1.0))
    assert len(next(iter(data.val))) == 2 and len(next(iter(data.test))) == 2


def test_binary_run_reports_imbalance_metrics_and_the_baseline(tmp_path: Path) -> None:
    out = dlrun(["train", "data=breast_cancer", "trainer.epochs=3", "trainer.threshold=auto",
                 f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"accuracy", "auc", "pr_auc", "precision", "recall", "f1"} <= set(metrics["test"])
    assert metrics["baseline"]["majority_class"] == "1" and 0.6 < metrics["baseline"]["majority_rate"] < 0.65
    assert metrics["threshold"]["chosen_by"].startswith("auto") and 0 < metrics["threshold"]["value"] < 1
    assert "always answering '1' is right for" in out.stdout and "threshold" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["data=diabetes", "trainer.class_weight=balanced"], "trainer.class_weight='balanced': weights classes"),
    (["data=iris", "trainer.threshold=0.3"], "trainer.threshold=0.3: applies to binary tasks"),
    (["data=breast_cancer", "trainer.threshold=2"], "trainer.threshold=2: must be a number in (0, 1) or 'auto'"),
    (["data=breast_cancer", "trainer.class_weight=balanced_"], "did you mean 'balanced'"),
    (["data=diabetes", "data.resample=undersample"], "data.resample=undersample: resampling balances classes"),
    (["data=breast_cancer", "data.high_cardinality=keep"], "data.high_cardinality='keep': one of"),
])
def test_bad_imbalance_settings_exit_2_before_training(tmp_path: Path, args, message) -> None:
    out = dlrun(["train", *args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


# ------------------------------------------------------------ dlrun predict
@pytest.fixture(scope="module")
def people_run(tmp_path_factory) -> Path:
    """A trained run on the people table (text target yes/no, a text feature, gaps)."""
    home = tmp_path_factory.mktemp("people")
    write_people_csv(home / "people.csv", rows=200)
    out = dlrun(["train", "data=csv", "data.path=people.csv", "data.target=label", "trainer.epochs=3",
                 "trainer.verbose=0", f"hydra.run.dir={home / 'run'}"], home)
    assert out.returncode == 0, out.stderr
    return home


def test_predict_keeps_extra_and_reordered_columns(people_run: Path) -> None:
    frame = pd.read_csv(people_run / "people.csv").iloc[:12]
    new = frame[["income", "label", "city", "age"]].assign(note="extra")
    new.to_csv(people_run / "new.csv", index=False)
    out = dlrun(["predict", "run", "new.csv"], people_run)
    assert out.returncode == 0, out.stderr
    written = pd.read_csv(people_run / "run" / "predictions" / "new.csv")
    assert list(written.columns) == ["income", "label", "city", "age", "note", "predicted_label",
                                     "probability_no", "probability_yes"]
    assert set(written["predicted_label"]) <= {"yes", "no"}
    np.testing.assert_allclose(written["probability_no"] + written["probability_yes"], 1.0, rtol=1e-5)
    info = json.loads((people_run / "run" / "preprocessing.json").read_text())
    yes = (written["probability_yes"] >= info["threshold"]).map({True: "yes", False: "no"})
    assert (written["predicted_label"] == yes).all()
    assert "against the file's label column (12 rows): accuracy" in out.stdout


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["city"]), "missing feature column(s) the run was trained on: 'city'"),
    (lambda f: f.assign(city=["Berlin"] + list(f["city"].iloc[1:])),
     "column 'city' holds value(s) the run never saw: 'Berlin' (data row 1); known: Oslo, Paris, Rome"),
    (lambda f: f.assign(age=["old"] + list(f["age"].iloc[1:])), "column 'age' must hold numbers; data row 1"),
])
def test_predict_refuses_bad_rows(people_run: Path, tmp_path: Path, change, message) -> None:
    change(pd.read_csv(people_run / "people.csv").iloc[:5]).to_csv(tmp_path / "bad.csv", index=False)
    out = dlrun(["predict", str(people_run / "run"), "bad.csv", "--out", "p.csv"], tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "p.csv").exists()


def test_predict_allows_unseen_categories_when_asked(people_run: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(people_run / "people.csv").iloc[:5].assign(city="Berlin")
    frame.to_csv(tmp_path / "new.csv", index=False)
    out = dlrun(["predict", str(people_run / "run"), "new.csv", "--allow-unseen", "--out", "p.parquet"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 5


def test_predict_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    write_people_csv(tmp_path / "people.csv", rows=60)
    (tmp_path / "empty").mkdir()
    out = dlrun(["predict", "empty", "people.csv"], tmp_path)
    assert out.returncode == 2 and "not a dlrun run folder" in out.stderr
    out = dlrun(["train", "data=csv", "data.path=people.csv", "data.target=label", "trainer.epochs=1",
                 "trainer.save_model=false", "trainer.verbose=0", "hydra.run.dir=nomodel"], tmp_path)
    assert out.returncode == 0, out.stderr
    out = dlrun(["predict", "nomodel", "people.csv"], tmp_path)
    assert out.returncode == 2 and "has no model.keras (status completed; it was trained with " \
        "trainer.save_model=false)" in out.stderr
    out = dlrun(["predict", "nomodel", "people.csv", "--out", "people.csv"], tmp_path)
    assert out.returncode == 2


def test_predict_refuses_a_tampered_preprocessing_file(people_run: Path, tmp_path: Path) -> None:
    import shutil

    import skops.io as sio

    run = tmp_path / "run"
    shutil.copytree(people_run / "run", run)
    sio.dump({"model": pd.Timestamp("2020-01-01")}, run / "preprocessing.skops")  # a type dlrun never writes
    out = dlrun(["predict", str(run), str(people_run / "people.csv")], tmp_path)
    assert out.returncode == 2 and "refused to load" in out.stderr, out.stderr


def test_predict_on_a_search_folder_uses_its_best_model(tmp_path: Path) -> None:
    write_people_csv(tmp_path / "people.csv", rows=120)
    out = dlrun(["tune", "data=csv", "data.path=people.csv", "data.target=label", "search.max_trials=1",
                 "trainer.epochs=2", "trainer.verbose=0", "hydra.run.dir=search"], tmp_path)
    assert out.returncode == 0, out.stderr
    out = dlrun(["predict", "search", "people.csv", "--out", "p.csv"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "best_model.keras" in out.stdout and len(pd.read_csv(tmp_path / "p.csv")) == 120
