"""The tabular explanation methods (permutation, SHAP, LIME) on small Keras models whose
answers are known: which features decide the label, and in which units."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import ExplainConfig
from tests.explain_helpers import explained

@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


FAST = dict(repeats=3, shap_rows=60, background=40, lime_samples=600, lime_features=5, top=6)


def _mlp(inputs: int, outputs: int, activation: str, hidden: int = 16):
    import keras

    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(outputs, activation=activation)])


def _run(method: str, model, **options):
    from dlrun.explain.registry import METHODS

    return METHODS[method].load()(model, ExplainConfig(**{**FAST, **options}))


@pytest.fixture(scope="module")
def two_features():
    """600 rows, 10 features; the label is x2 + x7 > 0 and nothing else."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(600, 10)).astype("float32")
    y = (x[:, 2] + x[:, 7] > 0).astype(int)
    model = _mlp(10, 1, "sigmoid")
    model.compile("adam", "binary_crossentropy")
    model.fit(x[:480], y[:480], epochs=40, batch_size=32, verbose=0)
    result = explained(model, x[:480], x[480:], y[480:], "binary", classes=["no", "yes"])
    assert np.mean(result.predicted(result.outputs(x[480:])) == y[480:]) > 0.85
    return result


@pytest.fixture(scope="module")
def one_hot():
    """A table as read (a text column, a numeric one in the hundreds, a noise column) behind
    a ColumnTransformer: the label is color == 'red' or size > 150."""
    import keras
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from dlrun.explain.source import feature_groups

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"size": rng.uniform(100, 200, 600), "color": rng.choice(["red", "green", "blue"], 600),
                          "noise": rng.normal(size=600)})
    y = ((frame["color"] == "red") | (frame["size"] > 150)).to_numpy().astype(int)
    columns = list(frame.columns)
    ct = ColumnTransformer([("num", StandardScaler(), ["size", "noise"]),
                            ("text", OneHotEncoder(sparse_output=False, handle_unknown="ignore"), ["color"])],
                           verbose_feature_names_out=False)
    ct.fit(frame.iloc[:480])

    def transform(f: pd.DataFrame) -> np.ndarray:
        return np.asarray(ct.transform(f[columns]), dtype="float32")

    names, groups = feature_groups(ct, list(ct.get_feature_names_out()))
    x = transform(frame)
    model = _mlp(x.shape[1], 1, "sigmoid")
    model.compile("adam", "binary_crossentropy")
    model.fit(x[:480], y[:480], epochs=60, batch_size=32, verbose=0)
    result = explained(model, x[:480], x[480:], y[480:], "binary", classes=["small", "big"], feature_names=names,
                       groups=groups, source_train=frame.iloc[:480], source_test=frame.iloc[480:],
                       transform=transform, rows=(0, 1))
    assert np.mean(result.predicted(result.outputs(x[480:])) == y[480:]) > 0.85
    return result


def _linear(scale: float):
    """y = scale * (3 x0 - 2 x1) as a Keras model with set weights: known importances."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.layers[0].set_weights([np.array([[3.0], [-2.0], [0.0], [0.0]]) * scale, np.zeros(1)])
    x = np.random.default_rng(2).normal(size=(900, 4)).astype("float32")
    y = scale * (3 * x[:, 0] - 2 * x[:, 1])
    return explained(model, x[:500], x[500:], y[500:], "regression", target="price", rows=(0,))


def test_permutation_and_shap_rank_the_deciding_features_first(two_features):
    permutation = _run("permutation", two_features)
    shap = _run("shap", two_features)
    assert set(permutation.importance.index[:2]) == {"x2", "x7"}
    assert set(shap.importance.index[:2]) == {"x2", "x7"}
    table = permutation.tables["permutation_importance.csv"]
    assert list(table.columns) == ["feature", "importance_mean", "importance_std", "log_loss_increase_mean",
                                   "log_loss_increase_std"] and len(table) == 10
    assert table["importance_mean"].is_monotonic_decreasing
    assert permutation.importance.name == "permutation: log loss rise"  # ranks by the finer score
    assert "x2" in permutation.lines[0] and "accuracy" in permutation.lines[0]
    assert shap.passed, shap.checks
    assert "additivity" in next(iter(shap.checks))
    importance = shap.tables["shap_importance.csv"]
    assert list(importance.columns) == ["feature", "mean_abs_shap", "mean_abs_shap_yes"]
    values = shap.tables["shap_values.csv"]
    assert list(values.columns[:5]) == ["test_row", "data_row", "class", "base_value", "output"]
    assert len(values) == FAST["shap_rows"] and (values["class"] == "yes").all()
    assert "shap_importance_encoded.csv" not in shap.tables  # one model column per source column
    # additivity row by row, within GradientExplainer's sampling error
    error = values["base_value"] + values[[f"x{i}" for i in range(10)]].sum(axis=1) - values["output"]
    assert float(np.abs(error).mean()) < 0.1


def test_every_file_named_in_the_registry_is_written(two_features):
    from dlrun.explain.registry import METHODS

    two_features.rows = [0, 3]
    names = set()
    for method in ("permutation", "shap", "lime"):
        result = _run(method, two_features)
        names |= set(result.tables) | set(result.figures)
        assert result.lines
        for figure in result.figures.values():
            assert figure.axes  # a Figure, not saved (the task writes it)
    assert names == {"permutation_importance.csv", "permutation_importance.png", "shap_importance.csv",
                     "shap_values.csv", "shap_summary.png", "lime.csv", "lime_row0.png", "lime_row3.png"}
    assert "lime_row<N>.png" in METHODS["lime"].writes


def test_importances_are_in_the_target_units():
    small, large = _linear(1.0), _linear(1000.0)
    p_small, p_large = _run("permutation", small), _run("permutation", large)
    ratio = p_large.importance / p_small.importance.reindex(p_large.importance.index)
    assert np.allclose(ratio[["x0", "x1"]], 1000.0, rtol=1e-3)
    # shuffling x0 of y = 3000 x0 - 2000 x1 raises MAE by E|3000 (x0 - x0')| = 3000 * 2 / sqrt(pi)
    assert p_large.importance["x0"] == pytest.approx(3000 * 2 / np.sqrt(np.pi), rel=0.12)
    assert p_large.importance["x1"] == pytest.approx(2000 * 2 / np.sqrt(np.pi), rel=0.12)
    assert abs(p_large.importance["x2"]) < 1e-6 and "target 'price'" in p_large.lines[0]
    s_small, s_large = _run("shap", small), _run("shap", large)
    ratio = s_large.importance / s_small.importance.reindex(s_large.importance.index)
    assert np.allclose(ratio[["x0", "x1"]], 1000.0, rtol=1e-3)
    # linear: SHAP of x0 is 3000 (x0 - E x0), so mean |SHAP| ~ 3000 * E|x0| = 3000 * sqrt(2 / pi)
    assert s_large.importance["x0"] == pytest.approx(3000 * np.sqrt(2 / np.pi), rel=0.2)
    assert list(s_large.importance.index[:2]) == ["x0", "x1"]
    assert (s_large.tables["shap_values.csv"]["class"] == "price").all()
    assert "shap_importance_encoded.csv" not in s_large.tables and s_large.passed
    lime = _run("lime", large).tables["lime.csv"]
    assert (lime["explained_class"] == "price").all()
    top = lime.iloc[lime["weight"].abs().argmax()]
    assert "x0" in top["condition"] and abs(top["weight"]) > 100  # target units, not scaled ones


def test_a_model_that_ignores_its_inputs_scores_zero_everywhere(two_features):
    import keras

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="sigmoid",
                                                                     kernel_initializer="zeros")])
    flat = explained(model, two_features.x_train, two_features.x_test, two_features.y_test, "binary",
                     classes=["no", "yes"])
    result = _run("permutation", flat)
    assert (result.importance == 0).all()
    assert "unchanged" in result.lines[0]
    shap = _run("shap", flat)
    assert np.allclose(shap.importance, 0) and shap.passed


def test_one_hot_columns_are_explained_as_their_source_column(one_hot):
    shap = _run("shap", one_hot)
    table = shap.tables["shap_importance.csv"]
    assert sorted(table["feature"]) == ["color", "noise", "size"]
    assert table["feature"].iloc[-1] == "noise"
    encoded = shap.tables["shap_importance_encoded.csv"]
    assert sorted(encoded["feature"]) == ["color = blue", "color = green", "color = red", "noise", "size"]
    assert (encoded.set_index("feature")["column"].filter(like="color = ") == "color").all()
    # a source column's SHAP is the sum of its encoded columns' (|sum| <= sum of |.|)
    color = table.set_index("feature").loc["color", "mean_abs_shap"]
    assert color <= encoded[encoded["column"] == "color"]["mean_abs_shap"].sum() + 1e-9
    assert list(shap.tables["shap_values.csv"].columns[5:]) == one_hot.columns == ["size", "noise", "color"]
    permutation = _run("permutation", one_hot)
    assert sorted(permutation.importance.index) == ["color", "noise", "size"]
    assert permutation.importance.index[-1] == "noise"


def test_lime_explains_the_predicted_class_in_source_units(one_hot):
    predicted = one_hot.predicted(one_hot.outputs(one_hot.x_test))
    wrong = np.flatnonzero(predicted != one_hot.y_test)
    one_hot.rows = [int(np.flatnonzero(predicted == 0)[0]), int(np.flatnonzero(predicted == 1)[0]),
                    *[int(r) for r in wrong[:1]]]
    result = _run("lime", one_hot, lime_features=3)
    table = result.tables["lime.csv"]
    assert list(table.columns) == ["test_row", "data_row", "true", "predicted", "explained_class", "condition",
                                   "weight"]
    first, second = table[table["test_row"] == one_hot.rows[0]], table[table["test_row"] == one_hot.rows[1]]
    assert (first["explained_class"] == "small").all() and (first["predicted"] == "small").all()
    assert (second["explained_class"] == "big").all()
    assert table["condition"].str.contains(r"^color=(?:red|green|blue)$").any()  # names, not codes or one-hot columns
    sizes = [float(v) for c in table["condition"] if "size" in c for v in re.findall(r"\d+\.\d+", c)]
    assert sizes and min(sizes) > 90  # thresholds in the file's units (100-200), not standardized ones
    assert len(result.lines) == len(one_hot.rows) and set(result.figures) == {f"lime_row{r}.png" for r in one_hot.rows}
    if len(wrong):
        assert "misclassified" in result.lines[-1]
        assert "MISCLASSIFIED" in result.figures[f"lime_row{one_hot.rows[-1]}.png"].axes[0].get_title()
    assert "misclassified" not in result.lines[0]


def test_many_classes_explain_only_the_predicted_one_with_the_same_values(monkeypatch):
    """Above ALL_CLASSES classes, only each row's predicted class is explained; the values
    for that class are the same (shap reseeds per class)."""
    import keras

    from dlrun.explain import shapley

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(3).normal(size=(300, 5)).astype("float32")
    y = np.digitize(x[:, 0] + x[:, 4], [-0.5, 0.5])
    model = _mlp(5, 3, "softmax")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:240], y[:240], epochs=20, verbose=0)
    three = explained(model, x[:240], x[240:], y[240:], "multiclass", classes=["low", "mid", "high"])
    every = _run("shap", three)
    assert {"mean_abs_shap_low", "mean_abs_shap_mid", "mean_abs_shap_high"} <= set(every.tables["shap_importance.csv"])
    monkeypatch.setattr(shapley, "ALL_CLASSES", 2)
    ranked = _run("shap", three)
    assert list(ranked.tables["shap_importance.csv"].columns) == ["feature", "mean_abs_shap"]
    assert np.allclose(ranked.importance, every.importance.reindex(ranked.importance.index))
    values = ranked.tables["shap_values.csv"]
    assert (values["class"] == [three.classes[c] for c in three.predicted(three.outputs(x[240:][values["test_row"]]))]).all()
    assert set(ranked.importance.index[:2]) == {"x0", "x4"}
