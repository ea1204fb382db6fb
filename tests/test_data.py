"""The data layer (dlrun/data/): bundled sets, CSV/Parquet files, missing values,
encoding, the stratified split and scaling fitted on the training rows only.
pandas + scikit-learn only: nothing here downloads data or imports TensorFlow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import DataConfig
from dlrun.data import build_data
from dlrun.data.prepare import prepare
from dlrun.data.sources import load_frame
from dlrun.errors import DataError

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers
def csv_cfg(path: Path, target: str = "label", **kw) -> DataConfig:
    return DataConfig(name="csv", path=str(path), target=target, **kw)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_prepare(frame: pd.DataFrame, target: str = "label", **kw):
    """prepare() on a copy of `frame`, bypassing build_data's cache."""
    return prepare(frame.copy(), target, "auto", DataConfig(name="csv", path="unused.csv", target=target, **kw))


def id_target(n: int) -> pd.Series:
    """A float regression target that names its row: row i has target i + 0.5. The
    target is never scaled, so y_train/y_val/y_test tell which rows went where."""
    return pd.Series(np.arange(n) + 0.5, name="label")


def ids(y: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(y) - 0.5).astype(int)


def split_ids(n: int, **kw) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ids of the train/val/test splits of an n-row regression table (a regression
    split depends only on n and the split settings, not on the feature values)."""
    frame = pd.DataFrame({"f": np.zeros(n), "label": id_target(n)})
    b = run_prepare(frame, scaling="none", drop_constant=False, **kw)  # "f" is constant on purpose
    return ids(b.y_train), ids(b.y_val), ids(b.y_test)


def sorted_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows of [x | y] in lexicographic order: a split's content, ignoring row order."""
    table = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    return table[np.lexsort(table.T[::-1])]


def class_shares(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y, minlength=n_classes) / len(y)


# ---------------------------------------------------------- bundled sets
@pytest.mark.parametrize("name, task, n_outputs, n_features, n_rows, n_classes", [
    ("digits", "multiclass", 10, 64, 1797, 10),
    ("iris", "multiclass", 3, 4, 150, 3),
    ("wine", "multiclass", 3, 13, 178, 3),
    ("breast_cancer", "binary", 1, 30, 569, 2),
    ("diabetes", "regression", 1, 10, 442, 0),
])
def test_bundled_sets(name, task, n_outputs, n_features, n_rows, n_classes) -> None:
    b = build_data(DataConfig(name=name))
    m = b.meta
    assert (m.task, m.n_outputs, m.input_shape) == (task, n_outputs, (n_features,))
    assert len(m.feature_names) == n_features
    assert len(m.classes) == n_classes
    assert m.rows == {"train": len(b.x_train), "val": len(b.x_val), "test": len(b.x_test)}
    assert sum(m.rows.values()) == n_rows
    for x, y in ((b.x_train, b.y_train), (b.x_val, b.y_val), (b.x_test, b.y_test)):
        assert x.shape == (len(y), n_features) and x.dtype == np.float32
        assert np.isfinite(x).all()
    if task == "regression":
        assert b.y_train.dtype == np.float32
        assert len(np.unique(b.y_train)) > 50
    else:
        assert b.y_train.dtype == np.int32
        labels = np.concatenate([b.y_train, b.y_val, b.y_test])
        assert sorted(np.unique(labels)) == list(range(n_classes))


def test_digits_test_split_matches_sklearn_stratified_split() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    b = build_data(DataConfig(name="digits", test_size=0.2, split_seed=0, scaling="none"))
    assert len(b.y_test) == len(y_test)
    assert sorted(np.bincount(b.y_test)) == sorted(np.bincount(y_test))
    assert np.array_equal(np.bincount(b.y_test, minlength=10), np.bincount(y_test, minlength=10))
    np.testing.assert_array_equal(sorted_rows(b.x_test, b.y_test), sorted_rows(x_test, y_test))


def test_bundled_split_is_stratified() -> None:
    b = build_data(DataConfig(name="digits"))
    whole = class_shares(np.concatenate([b.y_train, b.y_val, b.y_test]), 10)
    for part in (b.y_train, b.y_val, b.y_test):
        assert np.abs(class_shares(part, 10) - whole).max() < 0.01
    assert b.meta.report["stratified"] is True


def test_csv_split_is_stratified_on_imbalanced_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"f": rng.normal(size=100), "label": [1] * 10 + [0] * 90})
    b = build_data(csv_cfg(write_csv(tmp_path / "imbalanced.csv", frame)))
    assert b.meta.rows == {"train": 70, "val": 10, "test": 20}
    assert (int(b.y_test.sum()), int(b.y_val.sum()), int(b.y_train.sum())) == (2, 1, 7)


def test_split_sizes_follow_test_and_val_size() -> None:
    b = build_data(DataConfig(name="digits", test_size=0.3, val_size=0.2))
    n = 1797
    assert abs(b.meta.rows["test"] - 0.3 * n) <= 1
    assert abs(b.meta.rows["val"] - 0.2 * n) <= 2
    assert sum(b.meta.rows.values()) == n


def test_same_seed_same_split_other_seed_other_split() -> None:
    cfg = DataConfig(name="wine")
    frame, target, task = load_frame(cfg)
    first = prepare(frame.copy(), target, task, cfg)
    again = prepare(frame.copy(), target, task, cfg)
    other = prepare(frame.copy(), target, task, DataConfig(name="wine", split_seed=1))
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.x_test.shape == other.x_test.shape
    assert not np.array_equal(first.x_test, other.x_test)
    assert not np.array_equal(first.y_train, other.y_train)


def test_train_rows_keeps_a_stratified_subset_of_training_rows_only() -> None:
    whole = build_data(DataConfig(name="digits"))
    fewer = build_data(DataConfig(name="digits", train_rows=50))
    assert fewer.meta.rows["train"] == 50 == len(fewer.x_train)
    assert fewer.meta.rows["val"] == whole.meta.rows["val"] and fewer.meta.rows["test"] == whole.meta.rows["test"]
    np.testing.assert_array_equal(fewer.y_test, whole.y_test)  # validation and test stay whole
    assert set(np.unique(fewer.y_train)) == set(range(10)) and np.bincount(fewer.y_train).max() <= 6
    assert build_data(DataConfig(name="digits", train_rows=5000)).meta.rows["train"] == whole.meta.rows["train"]
    with pytest.raises(Exception, match="train_rows"):
        DataConfig(name="digits", train_rows=1)


# ---------------------------------------------------------------- scaling
def shifted_frame(n: int = 100) -> Tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Column 'shift' is N(0, 1) on the rows the split puts in train and val, and
    about 1000 on the test rows; column 'const' never changes."""
    train, _, test = split_ids(n)
    rng = np.random.default_rng(0)
    shift = rng.normal(size=n)
    shift[test] += 1000.0
    frame = pd.DataFrame({"shift": shift, "wide": rng.uniform(-50, 50, size=n), "const": 7.0,
                          "label": id_target(n)})
    return frame, train, test


def test_standard_scaling_is_fitted_on_the_training_split_only() -> None:
    frame, train, test = shifted_frame()
    b = run_prepare(frame, scaling="standard", drop_constant=False)
    assert np.array_equal(np.sort(ids(b.y_train)), np.sort(train))
    names = b.meta.feature_names
    assert names == ["shift", "wide", "const"]
    x_train = b.x_train.astype(np.float64)
    np.testing.assert_allclose(x_train[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train[:, :2].std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(x_train[:, 2], 0.0)  # a constant column is only centred
    # the test rows use the train mean/std: the shift survives
    raw_train = frame.loc[ids(b.y_train), "shift"].to_numpy()
    raw_test = frame.loc[ids(b.y_test), "shift"].to_numpy()
    expected = (raw_test - raw_train.mean()) / raw_train.std()
    np.testing.assert_allclose(b.x_test[:, 0], expected, rtol=1e-5)
    assert b.x_test[:, 0].mean() > 100
    assert abs(b.x_val[:, 0].mean()) < 2


def test_minmax_scaling_puts_train_features_in_unit_interval() -> None:
    frame, _, _ = shifted_frame()
    b = run_prepare(frame, scaling="minmax", drop_constant=False)
    x_train = b.x_train[:, :2]
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(x_train.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x_train.max(axis=0), 1.0, atol=1e-6)
    assert b.x_test[:, 0].min() > 1.0  # transformed with the train range, not clipped or refitted


def test_scaling_none_leaves_values_unchanged() -> None:
    frame, _, _ = shifted_frame()
    b = run_prepare(frame, scaling="none", drop_constant=False)
    raw = frame[["shift", "wide", "const"]].to_numpy(np.float32)
    for x, y in ((b.x_train, b.y_train), (b.x_val, b.y_val), (b.x_test, b.y_test)):
        np.testing.assert_array_equal(x, raw[ids(y)])
    np.testing.assert_array_equal(b.y_test, frame["label"].to_numpy(np.float32)[ids(b.y_test)])


# ----------------------------------------------------- CSV: encoding, values
def colors_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame({"size": rng.normal(size=n), "color": rng.choice(["red", "green", "blue"], n),
                         "label": id_target(n)})


def test_text_features_are_one_hot_encoded(tmp_path: Path) -> None:
    frame = colors_frame()
    b = build_data(csv_cfg(write_csv(tmp_path / "colors.csv", frame)))
    names = b.meta.feature_names
    assert names == ["size", "color_blue", "color_green", "color_red"]
    assert b.meta.report["text_columns"] == ["color"] and b.meta.report["encoding"] == "onehot"
    for x, y in ((b.x_train, b.y_train), (b.x_test, b.y_test)):
        onehot = x[:, 1:]
        assert set(np.unique(onehot)) == {0.0, 1.0}
        np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
        colors = frame["color"].to_numpy()[ids(y)]
        np.testing.assert_array_equal(np.array(["blue", "green", "red"])[onehot.argmax(axis=1)], colors)


def test_text_features_are_ordinal_encoded(tmp_path: Path) -> None:
    frame = colors_frame()
    b = build_data(csv_cfg(write_csv(tmp_path / "colors.csv", frame), categorical="ordinal", scaling="none"))
    assert b.meta.feature_names == ["size", "color"]
    assert b.meta.input_shape == (2,)
    for x, y in ((b.x_train, b.y_train), (b.x_test, b.y_test)):
        codes = {"blue": 0.0, "green": 1.0, "red": 2.0}
        expected = [codes[c] for c in frame["color"].to_numpy()[ids(y)]]
        np.testing.assert_array_equal(x[:, 1], expected)


def test_categorical_error_names_the_text_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "colors.csv", colors_frame())
    with pytest.raises(DataError, match=r"'color' holds text .*categorical=error"):
        build_data(csv_cfg(path, categorical="error"))


def test_text_target_becomes_class_labels(tmp_path: Path) -> None:
    n = 60
    score = np.arange(n, dtype=float)
    frame = pd.DataFrame({"score": score, "label": np.where(score >= 20, "pass", "fail")})
    b = build_data(csv_cfg(write_csv(tmp_path / "grades.csv", frame), scaling="none"))
    assert b.meta.task == "binary" and b.meta.n_outputs == 1
    assert b.meta.classes == ["fail", "pass"]
    assert b.y_train.dtype == np.int32 and set(np.unique(b.y_train)) == {0, 1}
    for x, y in ((b.x_train, b.y_train), (b.x_val, b.y_val), (b.x_test, b.y_test)):
        decoded = np.array(b.meta.classes)[y]
        np.testing.assert_array_equal(decoded, np.where(x[:, 0] >= 20, "pass", "fail"))


def test_text_target_with_three_classes_is_multiclass(tmp_path: Path) -> None:
    frame = pd.DataFrame({"f": np.arange(30.0), "label": ["cat", "dog", "eel"] * 10})
    b = build_data(csv_cfg(write_csv(tmp_path / "animals.csv", frame)))
    assert (b.meta.task, b.meta.n_outputs, b.meta.classes) == ("multiclass", 3, ["cat", "dog", "eel"])


def test_numeric_column_with_a_few_text_values_is_an_error(tmp_path: Path) -> None:
    values = [str(i) for i in range(30)]
    values[3] = "abc"
    frame = pd.DataFrame({"amount": values, "label": [i % 2 for i in range(30)]})
    path = write_csv(tmp_path / "typo.csv", frame)
    with pytest.raises(DataError, match=r"'amount' is numeric except for 1 value\(s\) such as 'abc'"):
        build_data(csv_cfg(path))


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_infinite_feature_values_are_an_error(tmp_path: Path, bad: str) -> None:
    lines = ["a,b,label"] + [f"{i},{bad if i == 5 else i},{i % 2}" for i in range(30)]
    path = write_text(tmp_path / f"inf{bad}.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'b' has infinite values"):
        build_data(csv_cfg(path))


# --------------------------------------------------------- missing values
def missing_frame() -> Tuple[pd.DataFrame, dict]:
    """60 rows with a known split plus 3 rows whose target is missing (at the end,
    so the kept rows keep their positions). In the train split 'num' is small and
    'color' is mostly blue; in val/test 'num' is large and 'color' is red, so the
    statistics of train differ from those of the whole table."""
    n = 60
    train, val, test = split_ids(n)
    num = np.zeros(n)
    num[train] = np.arange(len(train), dtype=float) ** 2  # skewed: median well below mean
    num[val] = 1000.0
    num[test] = 1000.0
    color = np.array(["red"] * n, dtype=object)
    color[train[: len(train) * 2 // 3]] = "blue"
    num_missing = [train[0], val[0], test[0], test[1]]
    color_missing = [train[1], test[2]]
    frame = pd.DataFrame({"num": num, "color": color, "label": id_target(n)})
    frame.loc[num_missing, "num"] = np.nan
    frame.loc[color_missing, "color"] = np.nan
    extra = pd.DataFrame({"num": [1.0, np.nan, 3.0], "color": ["red", "red", np.nan], "label": np.nan})
    frame = pd.concat([frame, extra], ignore_index=True)
    train_num = frame.loc[train, "num"].dropna()
    return frame, {"train": train, "num_missing": num_missing, "color_missing": color_missing,
                   "median": float(np.median(train_num)), "whole_median": float(frame["num"].median())}


def test_impute_fills_with_train_median_and_most_frequent(tmp_path: Path) -> None:
    frame, info = missing_frame()
    assert info["median"] != info["whole_median"]
    assert info["median"] < 0.8 * frame.loc[info["train"], "num"].mean()
    assert frame["color"].mode()[0] == "red"  # train's most frequent value is blue
    b = build_data(csv_cfg(write_csv(tmp_path / "holes.csv", frame), scaling="none"))
    assert b.meta.report["dropped_rows"] == 3
    assert b.meta.report["filled_values"] == 6
    assert sum(b.meta.rows.values()) == 60
    assert b.meta.feature_names == ["num", "color_blue", "color_red"]
    for x, y in ((b.x_train, b.y_train), (b.x_val, b.y_val), (b.x_test, b.y_test)):
        assert np.isfinite(x).all()
        for row, rid in zip(x, ids(y)):
            if rid in info["num_missing"]:
                assert row[0] == pytest.approx(info["median"])
            if rid in info["color_missing"]:
                assert list(row[1:]) == [1.0, 0.0]  # blue


def test_missing_drop_removes_rows_with_any_missing_feature(tmp_path: Path) -> None:
    frame, info = missing_frame()
    b = build_data(csv_cfg(write_csv(tmp_path / "holes.csv", frame), missing="drop"))
    assert b.meta.report["dropped_rows"] == 3 + 6
    assert b.meta.report["filled_values"] == 0
    assert sum(b.meta.rows.values()) == 60 - 6
    kept = set(np.concatenate([ids(b.y_train), ids(b.y_val), ids(b.y_test)]))
    assert kept.isdisjoint(info["num_missing"] + info["color_missing"])


def test_missing_error_names_the_column(tmp_path: Path) -> None:
    frame, _ = missing_frame()
    frame = frame[frame["label"].notna()]
    path = write_csv(tmp_path / "holes.csv", frame)
    with pytest.raises(DataError, match=r"column 'num' has 4 missing value\(s\)"):
        build_data(csv_cfg(path, missing="error"))


def test_missing_error_with_a_missing_target_names_the_target(tmp_path: Path) -> None:
    frame, _ = missing_frame()
    path = write_csv(tmp_path / "holes.csv", frame)
    with pytest.raises(DataError, match=r"target column 'label' has 3 missing value\(s\)"):
        build_data(csv_cfg(path, missing="error"))


# --------------------------------------------------------- task inference
@pytest.mark.parametrize("label, task, n_outputs", [
    ([0, 1, 2] * 20, "multiclass", 3),
    ([0, 1] * 30, "binary", 1),
    ([3, 7] * 30, "binary", 1),
    (list(np.linspace(0.05, 9.95, 60)), "regression", 1),
    (list(range(60)), "regression", 1),  # many distinct integers: a quantity, not classes
    (["no", "yes"] * 30, "binary", 1),
    ([True, False] * 30, "binary", 1),
])
def test_task_is_inferred_from_the_target(label, task, n_outputs) -> None:
    frame = pd.DataFrame({"f": np.arange(60.0), "label": label})
    b = run_prepare(frame)
    assert (b.meta.task, b.meta.n_outputs) == (task, n_outputs)
    assert b.y_train.dtype == (np.float32 if task == "regression" else np.int32)


def test_data_task_overrides_the_inferred_task() -> None:
    frame = pd.DataFrame({"f": np.arange(60.0), "label": [0, 1, 2] * 20})
    b = run_prepare(frame, task="regression")
    assert b.meta.task == "regression" and b.meta.classes == []
    assert b.y_train.dtype == np.float32 and set(np.unique(b.y_train)) == {0.0, 1.0, 2.0}
    b = run_prepare(pd.DataFrame({"f": np.arange(60.0), "label": [0, 1] * 30}), task="multiclass")
    assert (b.meta.task, b.meta.n_outputs) == ("multiclass", 2)
    b = build_data(DataConfig(name="digits", task="regression"))
    assert b.meta.task == "regression" and b.y_test.dtype == np.float32


def test_single_class_target_is_an_error() -> None:
    frame = pd.DataFrame({"f": np.arange(30.0), "label": [1] * 30})
    with pytest.raises(DataError, match=r"'label' has a single class \(1\)"):
        run_prepare(frame)
    with pytest.raises(DataError, match=r"single class \('yes'\)"):
        run_prepare(frame.assign(label="yes"))


def test_binary_task_with_three_classes_is_an_error() -> None:
    frame = pd.DataFrame({"f": np.arange(30.0), "label": [0, 1, 2] * 10})
    with pytest.raises(DataError, match=r"data.task=binary: target column 'label' has 3 classes"):
        run_prepare(frame, task="binary")


def test_regression_on_a_text_target_is_an_error() -> None:
    frame = pd.DataFrame({"f": np.arange(30.0), "label": ["a", "b", "c"] * 10})
    with pytest.raises(DataError, match=r"data.task=regression: target column 'label' holds text"):
        run_prepare(frame, task="regression")


# ------------------------------------------------------------------ files
def test_parquet_file_gives_the_same_data_as_csv(tmp_path: Path) -> None:
    frame = colors_frame()
    parquet = tmp_path / "colors.parquet"
    frame.to_parquet(parquet)
    from_parquet = build_data(csv_cfg(parquet))
    from_csv = build_data(csv_cfg(write_csv(tmp_path / "colors.csv", frame)))
    assert from_parquet.meta.feature_names == ["size", "color_blue", "color_green", "color_red"]
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_allclose(getattr(from_parquet, name), getattr(from_csv, name), rtol=1e-6)


def test_tsv_and_semicolon_files_are_read(tmp_path: Path) -> None:
    rows = [f"{i}\t{i % 2}" for i in range(30)]
    tsv = write_text(tmp_path / "t.tsv", "f\tlabel\n" + "\n".join(rows) + "\n")
    assert sum(build_data(csv_cfg(tsv)).meta.rows.values()) == 30
    semi = write_text(tmp_path / "t.csv", "f;label\n" + "\n".join(r.replace("\t", ";") for r in rows) + "\n")
    assert build_data(csv_cfg(semi)).meta.feature_names == ["f"]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.csv", r"absent\.csv: file not found"),
    (lambda d: (d / "folder.csv").mkdir() or d / "folder.csv", r"is a directory"),
    (lambda d: write_text(d / "table.json", '{"a": 1}'), r"unsupported file type '\.json'.*\.csv"),
    (lambda d: write_text(d / "empty.csv", ""), r"empty\.csv: the file is empty"),
    (lambda d: write_text(d / "empty.parquet", ""), r"empty\.parquet: the file is empty"),
    (lambda d: write_text(d / "header.csv", "f,label\n"), r"the table has a header but no rows"),
    (lambda d: (d / "noise.csv").write_bytes(bytes(range(256)) * 8) and d / "noise.csv",
     r"noise\.csv: cannot be read as a csv table"),
    (lambda d: (d / "noise.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8) and d / "noise.parquet",
     r"noise\.parquet: cannot be read as a parquet table"),
    (lambda d: write_text(d / "onecol.tsv", "label\n1\n2\n3\n"), r"found 1 column"),
])
def test_unreadable_files_give_a_clear_error(tmp_path: Path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError, match=r"^data\.path=.*" + message):
        build_data(csv_cfg(path))


def test_unknown_target_suggests_the_closest_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "colors.csv", colors_frame())
    with pytest.raises(DataError, match=r"data.target='lable': no such column .*did you mean 'label'\?"):
        build_data(csv_cfg(path, target="lable"))
    with pytest.raises(DataError, match=r"data.target='zzz': no such column .*columns: size, color, label"):
        build_data(csv_cfg(path, target="zzz"))


def test_target_listed_as_a_feature_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "colors.csv", colors_frame())
    with pytest.raises(DataError, match=r"target column 'label' is also listed as a feature"):
        build_data(csv_cfg(path, features=["size", "label"]))


def test_unknown_feature_column_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "colors.csv", colors_frame())
    with pytest.raises(DataError, match=r"data.features: column 'colour' is not in .*did you mean 'color'\?"):
        build_data(csv_cfg(path, features=["size", "colour"]))


def test_features_selects_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "colors.csv", colors_frame())
    b = build_data(csv_cfg(path, features=["color"]))
    assert b.meta.feature_names == ["color_blue", "color_green", "color_red"]
    assert b.meta.report["text_columns"] == ["color"]


# ------------------------------------------------------- rows and shapes
def test_max_rows_subsamples() -> None:
    full = build_data(DataConfig(name="digits"))
    b = build_data(DataConfig(name="digits", max_rows=100))
    assert sum(b.meta.rows.values()) == 100
    assert b.meta.report["rows_read"] == 100
    assert len(b.x_test) == 20
    assert sum(full.meta.rows.values()) == 1797


def test_max_rows_above_the_row_count_keeps_every_row() -> None:
    b = build_data(DataConfig(name="iris", max_rows=1000))
    assert sum(b.meta.rows.values()) == 150


@pytest.mark.parametrize("shape", [[8, 8, 1], [8, 8]])
def test_image_shape_reshapes_rows(shape) -> None:
    b = build_data(DataConfig(name="digits", image_shape=shape), image=True)
    n = b.meta.rows["train"]
    assert b.x_train.shape == (n, 8, 8, 1)
    assert b.x_val.shape[1:] == b.x_test.shape[1:] == (8, 8, 1)
    assert b.meta.input_shape == (8, 8, 1)
    flat = build_data(DataConfig(name="digits", image_shape=shape))  # image=False: dense rows
    assert flat.x_train.shape == (n, 64) and flat.meta.input_shape == (64,)
    np.testing.assert_array_equal(b.x_train.reshape(n, 64), flat.x_train)


def test_wrong_image_shape_is_an_error() -> None:
    with pytest.raises(DataError, match=r"data.image_shape=\[7, 7, 1\]: holds 49 values but each row has 64"):
        build_data(DataConfig(name="digits", image_shape=[7, 7, 1]), image=True)


def test_too_few_rows_for_the_split_is_an_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "tiny.csv", "f,label\n1,0.5\n2,1.5\n")
    with pytest.raises(DataError, match=r"2 rows are too few for the split \(test_size=0.2, val_size=0.1\)"):
        build_data(csv_cfg(path))
    three = build_data(csv_cfg(write_text(tmp_path / "three.csv", "f,label\n1,0.5\n2,1.5\n3,2.5\n")))
    assert three.meta.rows == {"train": 1, "val": 1, "test": 1}


def test_small_classification_table_still_splits(tmp_path: Path) -> None:
    # 3 classes of 5 rows: a test split of 2 rows cannot hold every class
    frame = pd.DataFrame({"f": np.arange(15.0), "label": [0, 1, 2] * 5})
    b = build_data(csv_cfg(write_csv(tmp_path / "small.csv", frame), test_size=0.1))
    assert sum(b.meta.rows.values()) == 15
    assert min(b.meta.rows.values()) >= 1


def test_build_data_is_cached_per_config(tmp_path: Path) -> None:
    cfg = DataConfig(name="iris", split_seed=3)
    assert build_data(cfg) is build_data(DataConfig(name="iris", split_seed=3))
    assert build_data(cfg) is not build_data(DataConfig(name="iris", split_seed=4))


def test_data_layer_does_not_import_tensorflow() -> None:
    code = ("import sys\n"
            "import dlrun.data\n"
            "from dlrun.config.schema import DataConfig\n"
            "b = dlrun.data.build_data(DataConfig(name='digits', image_shape=[8, 8, 1]), image=True)\n"
            "assert b.x_train.ndim == 4\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "print('HEAVY', heavy)\n"
            "sys.exit(1 if heavy else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tensorflow" not in done.stdout
