"""Image explanations (dlrun.explain.gradients, .features): saliency, SmoothGrad,
integrated gradients, Grad-CAM and feature visualization on tiny CNNs."""
from __future__ import annotations


import numpy as np
import pytest

from tests.explain_helpers import explained


def _fit(layers, x, y, loss, epochs):
    """`layers()` builds the layers after seeding: their initializers draw their seeds when
    they are made, so layers made before the seed depend on the tests that ran before."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(x.shape[1:])
    h = inp
    for layer in layers():
        h = layer(h)
    model = keras.Model(inp, h)
    model.compile("adam", loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def _images(n, seed=0, size=8):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 1)).astype("float32")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def softmax_cnn():
    """Conv2D(4,3)+Flatten+Dense(3, softmax) on dim random 8x8x1 images with a bright 3x3
    patch on the left, in the middle or on the right (the class)."""
    import keras

    rng = np.random.default_rng(0)
    x = 0.3 * _images(400)
    y = np.arange(400) % 3
    for i, (c, top) in enumerate(zip(y, rng.integers(0, 6, 400))):
        x[i, top:top + 3, [0, 3, 5][c]:[0, 3, 5][c] + 3] += 0.7
    model = _fit(lambda: [keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Activation("relu", name="conv_act"),
                  keras.layers.Flatten(name="flatten"), keras.layers.Dense(3, activation="softmax", name="output")],
                 x, y, "sparse_categorical_crossentropy", epochs=5)
    return explained(model, x[:300], x[300:], y[300:], "multiclass", classes=["left", "middle", "right"],
                     rows=list(range(6)))


@pytest.fixture(scope="module")
def corner_cnn():
    """A binary sigmoid CNN whose label is: the top-left 3x3's mean > 0.5."""
    import keras

    x = _images(2000, seed=1)
    y = (x[:, :3, :3, 0].mean(axis=(1, 2)) > 0.5).astype(int)
    model = _fit(lambda: [keras.layers.Conv2D(4, 3, activation="relu", name="conv"), keras.layers.Flatten(),
                  keras.layers.Dense(1, activation="sigmoid", name="output")],
                 x, y, "binary_crossentropy", epochs=15)
    return explained(model, x[:1600], x[1600:], y[1600:], "binary", classes=["no", "yes"], rows=list(range(8)))


@pytest.fixture(scope="module")
def regression_cnn():
    """A CNN with one linear output: the image's mean brightness."""
    import keras

    x = _images(300, seed=2)
    y = x.mean(axis=(1, 2, 3))
    model = _fit(lambda: [keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(),
                  keras.layers.Dense(1, name="output")], x, y, "mse", epochs=4)
    return explained(model, x[:250], x[250:], y[250:], "regression", rows=[0, 1, 2, 3])


def _options(**values):
    from dlrun.config.schema import ExplainConfig

    return ExplainConfig(**values)


def _corner_share(maps):
    plane = np.abs(maps).sum(axis=-1)
    return float(np.mean(plane[:, :3, :3].sum(axis=(1, 2)) / plane.sum(axis=(1, 2))))


# ----------------------------------------------------------------- integrated gradients
def test_integrated_gradients_complete_within_one_percent(softmax_cnn):
    from dlrun.explain.gradients import completeness_error, ig_attributions

    x = softmax_cnn.x_test[:6]
    targets = softmax_cnn.outputs(x).argmax(axis=1)
    # ReLU kinks on the path make the quadrature converge irregularly: 64 steps are within
    # ~1%, 256 well within it (the method doubles its steps until every row is)
    attributions = ig_attributions(softmax_cnn.model, x, None, targets, n_steps=256)
    assert attributions.shape == x.shape
    assert completeness_error(softmax_cnn.model, x, None, targets, attributions).max() < 0.01
    coarse = ig_attributions(softmax_cnn.model, x, None, targets, n_steps=2)
    assert completeness_error(softmax_cnn.model, x, None, targets, coarse).max() > 0.01


def test_integrated_gradients_method_table_and_check(softmax_cnn):
    from dlrun.explain.gradients import integrated_gradients

    result = integrated_gradients(softmax_cnn, _options(ig_steps=2))  # too few: doubled until complete
    assert set(result.figures) == {"integrated_gradients.png"}
    table = result.tables["integrated_gradients.csv"]
    assert list(table.columns) == ["test_row", "data_row", "true", "predicted", "target_class", "output",
                                   "baseline_output", "attribution_sum", "completeness_error", "steps"]
    assert len(table) == 6 and (table["completeness_error"] < 0.01).all() and result.passed
    assert table["target_class"].tolist() == table["predicted"].tolist()
    assert table["steps"].nunique() == 1 and 2 < table["steps"].iloc[0] <= 1024
    np.testing.assert_allclose(table["attribution_sum"], table["output"] - table["baseline_output"], rtol=0.01)
    check = result.checks["integrated gradients completeness"]
    assert check.startswith("max error ") and "over 6 rows with" in check and check.endswith("(goal < 1%)")


def test_integrated_gradients_of_binary_class_zero_read_one_minus_p(corner_cnn):
    """A sigmoid output: rows predicted 0 are explained for 1 - p (the output's sign flipped)."""
    from dlrun.explain.gradients import integrated_gradients

    table = integrated_gradients(corner_cnn, _options()).tables["integrated_gradients.csv"]
    assert {"no", "yes"} <= set(table["target_class"])
    np.testing.assert_allclose(table["attribution_sum"], table["output"] - table["baseline_output"], rtol=0.01)
    p = corner_cnn.outputs(corner_cnn.x_test[:8])[:, 1]
    np.testing.assert_allclose(table["output"], np.where(table["target_class"] == "yes", p, 1 - p), rtol=1e-6)


# ----------------------------------------------------------------- saliency
def test_saliency_and_integrated_gradients_find_the_region_the_label_depends_on(corner_cnn):
    from dlrun.explain.gradients import ig_attributions, saliency_map, smoothgrad

    x = corner_cnn.x_test[:8]
    targets = corner_cnn.predicted(corner_cnn.outputs(x))
    # the top-left 3x3 is 14% of the pixels; the model should put most of its sensitivity there
    assert _corner_share(saliency_map(corner_cnn.model, x, targets)) > 0.5
    assert _corner_share(smoothgrad(corner_cnn.model, x, targets, samples=10, noise=0.1)) > 0.5
    assert _corner_share(ig_attributions(corner_cnn.model, x, None, targets)) > 0.5


def test_saliency_is_the_gradient_of_the_score_before_softmax(softmax_cnn):
    import tensorflow as tf

    from dlrun.explain.gradients import saliency_map

    model = softmax_cnn.model
    x = softmax_cnn.x_test[:4]
    targets = np.array([0, 1, 2, 1])
    dense = model.get_layer("output")
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        body = model.get_layer("flatten")(model.get_layer("conv_act")(model.get_layer("conv")(x_t)))
        logits = tf.matmul(body, dense.kernel) + dense.bias
        score = tf.gather(logits, targets, batch_dims=1)
    expected = np.abs(tape.gradient(score, x_t).numpy())
    np.testing.assert_allclose(saliency_map(model, x, targets), expected, rtol=1e-4, atol=1e-6)
    # the model itself keeps its softmax (tf-keras-vis changed a clone)
    np.testing.assert_allclose(np.asarray(model(x)).sum(axis=1), 1.0, rtol=1e-5)


def test_smoothgrad_is_seeded_and_leaves_numpy_alone(softmax_cnn):
    from dlrun.explain.gradients import smoothgrad

    x, targets = softmax_cnn.x_test[:3], np.array([0, 1, 2])
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    first = smoothgrad(softmax_cnn.model, x, targets, samples=5, noise=0.2, seed=1)
    assert (np.random.get_state()[1] == state).all()
    np.testing.assert_allclose(first, smoothgrad(softmax_cnn.model, x, targets, samples=5, noise=0.2, seed=1))
    assert not np.allclose(first, smoothgrad(softmax_cnn.model, x, targets, samples=5, noise=0.2, seed=2))
    assert first.shape == x.shape and (first >= 0).all()


def test_saliency_method_figure_and_lines(softmax_cnn):
    from dlrun.explain.gradients import saliency

    result = saliency(softmax_cnn, _options(smooth_samples=5))
    assert set(result.figures) == {"saliency.png"} and result.passed
    axes = result.figures["saliency.png"].axes
    assert len(axes) == 6 * 3
    assert axes[0].get_title().startswith("test row 0: true ") and ", predicted " in axes[0].get_title()
    assert any("of the gradient mass" in line for line in result.lines)


# ----------------------------------------------------------------- regression
def test_regression_cnn_saliency_and_integrated_gradients(regression_cnn):
    from dlrun.explain.gradients import integrated_gradients, saliency

    result = saliency(regression_cnn, _options(smooth_samples=4))
    assert "saliency.png" in result.figures
    ig = integrated_gradients(regression_cnn, _options())
    table = ig.tables["integrated_gradients.csv"]
    assert ig.passed and (table["completeness_error"] < 0.01).all()
    assert (table["target_class"] == "").all()
    np.testing.assert_allclose(table["output"], regression_cnn.outputs(regression_cnn.x_test[:4]), rtol=1e-6)


# ----------------------------------------------------------------- Grad-CAM
def test_grad_cam_map_has_the_conv_maps_shape_and_is_non_negative(softmax_cnn):
    from dlrun.explain.gradients import conv_layer, grad_cam_map, upsample

    x = softmax_cnn.x_test[:5]
    assert conv_layer(softmax_cnn.model) == "conv_act"  # after the conv's own activation layer
    cams = grad_cam_map(softmax_cnn.model, x, np.array([0, 1, 2, 0, 1]))
    assert cams.shape == (5, 6, 6) and (cams >= 0).all() and cams.max() > 0
    assert upsample(cams, (8, 8)).shape == (5, 8, 8)


def test_grad_cam_layer_stops_before_pooling():
    import keras

    from dlrun.explain.gradients import conv_layer

    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv_1")(inp)
    h = keras.layers.Activation("relu", name="conv_1_act")(h)
    h = keras.layers.BatchNormalization(name="conv_1_bn")(h)
    h = keras.layers.Dropout(0.2, name="conv_1_dropout")(h)  # the same map at inference: not named
    h = keras.layers.MaxPooling2D(2, name="pool_1")(h)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h))
    assert conv_layer(keras.Model(inp, out)) == "conv_1_bn"


def test_grad_cam_method_figure_and_lines(softmax_cnn):
    from dlrun.explain.gradients import grad_cam

    result = grad_cam(softmax_cnn, _options())
    assert set(result.figures) == {"grad_cam.png"}
    assert result.lines[0].startswith("Grad-CAM (layer conv_act, map 6x6): attention ")
    assert "conv_act" in result.figures["grad_cam.png"].axes[1].get_title()


def test_grad_cam_refuses_a_model_without_convolutions():
    import keras

    from dlrun.errors import ConfigError
    from dlrun.explain.gradients import grad_cam

    x = _images(40)
    model = _fit(lambda: [keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")], x,
                 (x.mean(axis=(1, 2, 3)) > 0.5).astype(int), "sparse_categorical_crossentropy", epochs=1)
    with pytest.raises(ConfigError, match="needs a convolutional layer"):
        grad_cam(explained(model, x[:30], x[30:], np.zeros(10, int), "multiclass", classes=["a", "b"]), _options())


# ----------------------------------------------------------------- feature visualization
def test_feature_visualization_raises_the_activations(softmax_cnn):
    from dlrun.explain.features import feature_visualization

    result = feature_visualization(softmax_cnn, _options(steps=60))
    assert set(result.figures) == {"feature_visualization.png"}
    table = result.tables["feature_visualization.csv"]
    assert list(table.columns) == ["layer", "unit", "class", "activation_start", "activation_end"]
    assert table["layer"].tolist() == ["conv_act"] * 4 + ["output"] * 3  # each conv after its activation
    assert table.loc[table["layer"] == "output", "class"].tolist() == ["left", "middle", "right"]
    assert (table["activation_end"] > table["activation_start"]).all() and result.passed
    assert result.checks["feature visualization ascent"].startswith("activation rose for 7 of 7 units in 60 steps")


def test_feature_visualization_stays_in_the_data_range(softmax_cnn):
    from dlrun.explain.features import activation_maximization

    images, start, end = activation_maximization(softmax_cnn.model, "output", [0, 2], 50, (0.0, 1.0), seed=3)
    assert images.shape == (2, 8, 8, 1) and images.min() >= 0.0 and images.max() <= 1.0
    assert (end > start).all()


def test_feature_visualization_of_one_layer_and_units(softmax_cnn):
    from dlrun.explain.features import feature_visualization

    table = feature_visualization(softmax_cnn, _options(layer="conv", units=[1, 3], steps=20)).tables[
        "feature_visualization.csv"]
    assert table["unit"].tolist() == [1, 3] and (table["class"] == "").all()


def test_feature_visualization_tells_a_dead_unit_from_a_failed_ascent():
    import keras

    from dlrun.explain.features import feature_visualization

    x = _images(20)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inp)
    out = keras.layers.Dense(2, activation="softmax", name="output")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    kernel, bias = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([kernel, np.array([0.0, -100.0], "float32")])  # unit 1: never on
    run = explained(model, x[:15], x[15:], np.zeros(5, int), "multiclass", classes=["a", "b"])
    result = feature_visualization(run, _options(layer="conv", steps=20))
    check = result.checks["feature visualization ascent"]
    assert check.startswith("activation rose for 1 of 2 units in 20 steps") and "dead" in check and "conv #1" in check
    assert result.passed  # a dead unit is the model's, not a failure of the method


def test_feature_visualization_names_a_bad_layer_or_unit(softmax_cnn):
    from dlrun.errors import ConfigError
    from dlrun.explain.features import feature_visualization

    with pytest.raises(ConfigError) as bad:
        feature_visualization(softmax_cnn, _options(layer="convv"))
    assert str(bad.value).startswith("explain.layer='convv': one of ") and "did you mean 'conv'" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        feature_visualization(softmax_cnn, _options(layer="conv", units=[0, 4]))
    assert str(bad.value) == "explain.units=[0, 4]: layer conv has 4 units (0 to 3)"


# ----------------------------------------------------------------- color images
def test_every_method_draws_color_images():
    import keras

    from dlrun.explain.features import feature_visualization
    from dlrun.explain.gradients import grad_cam, integrated_gradients, saliency

    x = np.random.default_rng(4).uniform(0, 1, (60, 8, 8, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > x[..., 2].mean(axis=(1, 2))).astype(int)
    model = _fit(lambda: [keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
                  keras.layers.Dense(2, activation="softmax")], x, y, "sparse_categorical_crossentropy", epochs=2)
    run = explained(model, x[:50], x[50:], y[50:], "multiclass", classes=["blue", "red"], rows=[0, 1])
    options = _options(smooth_samples=3, steps=10)
    for method in (saliency, integrated_gradients, grad_cam, feature_visualization):
        for figure in method(run, options).figures.values():
            figure.canvas.draw()


# ----------------------------------------------------------------- all four, digits
def test_all_image_methods_on_a_digits_cnn_write_their_files():
    import keras
    from sklearn.datasets import load_digits

    from dlrun.explain.features import feature_visualization
    from dlrun.explain.gradients import grad_cam, integrated_gradients, saliency

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target
    model = _fit(lambda: [keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.Conv2D(32, 3, activation="relu"),
                  keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")],
                 x[:1400], y[:1400], "sparse_categorical_crossentropy", epochs=5)
    run = explained(model, x[:1400], x[1400:], y[1400:], "multiclass", classes=[str(c) for c in range(10)],
                    rows=list(range(8)))
    options = _options()
    files = []
    for method in (saliency, integrated_gradients, grad_cam, feature_visualization):
        result = method(run, options)
        for figure in result.figures.values():
            figure.canvas.draw()
        files += list(result.figures) + list(result.tables)
    assert sorted(files) == ["feature_visualization.csv", "feature_visualization.png", "grad_cam.png",
                             "integrated_gradients.csv", "integrated_gradients.png", "saliency.png"]
