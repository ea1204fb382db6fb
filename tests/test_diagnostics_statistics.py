"""Gradient statistics: the callback's numbers on models whose answer is known (a deep
sigmoid stack, dead ReLUs, saturated sigmoids), its frame and checkpoint state, and
the gradients.png plot (drawn from constructed frames, without TensorFlow)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Tuple

import numpy as np
import pandas as pd
import pytest

from dlrun.diagnostics import plots
from dlrun.diagnostics.statistics import STAT_COLUMNS
from tests.helpers import REPO, make_run

PNG = b"\x89PNG\r\n\x1a\n"


def built(*overrides: str, rows: int = 64) -> Tuple[Any, Any, Any, Any]:
    """A compiled dlrun model for `overrides` (debug=fast data), its training pipeline,
    and a fixed batch of `rows` training rows in the form the loss expects."""
    from dlrun.losses import resolved_name
    from dlrun.preflight import checked
    from dlrun.training import compile_model, make_datasets, setup_runtime, targets

    run = make_run(*overrides)
    setup_runtime(run.trainer)
    bundle = checked(run)[0]
    loss_name = resolved_name(run, bundle.meta)
    data = make_datasets(bundle, run, loss_name)
    model = compile_model(run, bundle.meta, data.steps_per_epoch)
    x, y = bundle.x_train[:rows], targets(bundle.y_train[:rows], bundle.meta, loss_name)
    return model, data, x, y


@dataclass
class Fitted:
    model: Any
    stats: Any  # the gradient statistics callback
    data: Any
    x: Any
    y: Any


def fitted(*overrides: str, epochs: int = 1, keep_gradients: bool = False, before=None) -> Fitted:
    """The model of `overrides` trained `epochs` epochs with the statistics callback
    attached; `before(model)` may change its weights first."""
    from dlrun.diagnostics.statistics import gradient_statistics

    model, data, x, y = built(*overrides)
    if before is not None:
        before(model)
    stats = gradient_statistics(model, x, y, keep_gradients=keep_gradients)
    model.fit(data.train, epochs=epochs, verbose=0, callbacks=[stats], shuffle=False)
    return Fitted(model, stats, data, x, y)


def layer_rows(frame: pd.DataFrame, layer: str) -> pd.DataFrame:
    return frame[frame["layer"] == layer].set_index("epoch")


def test_module_imports_without_tensorflow() -> None:
    code = ("import sys, dlrun.diagnostics.statistics, dlrun.diagnostics.plots; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_frame_has_a_row_per_epoch_and_kernel_layer() -> None:
    stats = fitted("model.units=[16,8]", "model.activation=tanh", epochs=2).stats
    frame = stats.frame()
    assert tuple(frame.columns) == STAT_COLUMNS
    assert len(frame) == 3 * 3 and sorted(frame["epoch"].unique()) == [0, 1, 2]
    for _, rows in frame.groupby("epoch"):
        assert list(rows["layer"]) == ["dense_1", "dense_2", "output"]  # model order
        assert list(rows["activation"]) == ["tanh", "tanh", "softmax"]
        assert list(rows["units"]) == [16, 8, 10]
        assert rows["loss"].nunique() == 1
    assert frame[["grad_norm", "weight_norm", "loss"]].gt(0).all().all()
    assert frame["dead_fraction"].isna().all()  # no ReLU layer
    tanh = frame[frame["activation"] == "tanh"]["saturated_fraction"]
    assert tanh.between(0, 1).all() and frame[frame["layer"] == "output"]["saturated_fraction"].isna().all()
    assert stats.seconds > 0


def test_update_ratio_is_nan_before_training_and_positive_after_an_epoch() -> None:
    stats = fitted(epochs=1).stats
    frame = stats.frame()
    assert frame.loc[frame["epoch"] == 0, "update_ratio"].isna().all()
    assert (frame.loc[frame["epoch"] == 1, "update_ratio"] > 0).all()


def test_deep_sigmoid_stack_has_smaller_gradients_in_its_first_layer() -> None:
    stats = fitted("model.units=[32,32,32,32,32,32,32,32]", "model.activation=sigmoid",
                   "model.initializer=glorot_uniform", epochs=2).stats
    frame = stats.frame()
    first, last = layer_rows(frame, "dense_1")["grad_norm"], layer_rows(frame, "output")["grad_norm"]
    assert (first < last / 10).all(), (first, last)  # vanishing gradients, at every epoch


def test_relu_layer_with_very_negative_biases_is_all_dead() -> None:
    def negative_biases(model) -> None:
        layer = model.get_layer("dense_1")
        layer.bias.assign(np.full(layer.bias.shape, -1e3, dtype="float32"))

    stats = fitted("model.units=[32]", "model.activation=relu", epochs=1, before=negative_biases).stats
    rows = layer_rows(stats.frame(), "dense_1")
    assert rows["dead_fraction"].tolist() == [1.0, 1.0]
    assert rows["grad_norm"].tolist() == [0.0, 0.0]  # a dead unit passes no gradient back
    assert layer_rows(stats.frame(), "output")["dead_fraction"].isna().all()


def test_sigmoid_layer_with_huge_weights_is_saturated() -> None:
    def huge_kernel(model) -> None:
        layer = model.get_layer("dense_1")
        layer.kernel.assign(layer.kernel.numpy() * 1e6)

    stats = fitted("model.units=[32]", "model.activation=sigmoid", epochs=1, before=huge_kernel).stats
    rows = layer_rows(stats.frame(), "dense_1")
    assert (rows["saturated_fraction"] > 0.9).all()
    assert rows["dead_fraction"].isna().all()


def test_convolutional_network_counts_a_channel_over_every_position() -> None:
    def dead_first_channel(model) -> None:
        layer = model.get_layer("conv_1")
        bias = layer.bias.numpy()
        bias[0] = -1e3
        layer.bias.assign(bias)

    stats = fitted("model=cnn", "data.image_shape=[8,8,1]", "model.filters=[4]", "model.units=[8]",
                   epochs=1, before=dead_first_channel).stats
    frame = stats.frame()
    assert list(frame.loc[frame["epoch"] == 0, "layer"]) == ["conv_1", "dense_1", "output"]
    conv = layer_rows(frame, "conv_1")
    assert conv["units"].tolist() == [4, 4] and conv.loc[0, "dead_fraction"] == pytest.approx(0.25, abs=1e-9)


@pytest.mark.parametrize("overrides,output", [
    (("data=breast_cancer", "trainer.class_weight=balanced"), "sigmoid"),
    (("data=diabetes",), "linear"),  # the output Dense layer, before the target_units rescaling
    (("loss=categorical_crossentropy", "regularization=[batchnorm,dropout,l2]"), "softmax"),
])
def test_every_task_and_regularization_is_measured(overrides, output: str) -> None:
    stats = fitted("model.units=[16]", *overrides, epochs=1).stats
    frame = stats.frame()
    assert list(frame["layer"]) == ["dense_1", "output"] * 2
    assert layer_rows(frame, "output")["activation"].unique().tolist() == [output]
    assert np.isfinite(frame[["grad_norm", "weight_norm", "loss"]].to_numpy(dtype=float)).all()


def test_measuring_leaves_training_untouched() -> None:
    """Dropout and batch normalization run in inference mode during a measurement: the
    trained weights (batch norm's moving statistics included) are those of a run without it."""
    overrides = ("model.units=[16]", "regularization=[batchnorm,dropout]", "trainer.deterministic=true")
    model, data, _, _ = built(*overrides)
    model.fit(data.train, epochs=2, verbose=0, shuffle=False)
    measured = fitted(*overrides, epochs=2).model
    for plain, with_stats in zip(model.get_weights(), measured.get_weights()):
        np.testing.assert_array_equal(plain, with_stats)


def test_traced_and_eager_measurements_agree(monkeypatch) -> None:
    from dlrun.diagnostics import statistics

    frames = []
    for calls in (1, 10 ** 6):  # trace from the first measurement on / never
        monkeypatch.setattr(statistics, "TRACE_MIN_CALLS", calls)
        frames.append(fitted("model.units=[16]", epochs=2).stats.frame())
    pd.testing.assert_frame_equal(frames[0], frames[1], rtol=1e-5)


def test_kept_gradients_are_the_measured_ones() -> None:
    run = fitted("model.units=[16]", epochs=1, keep_gradients=True)
    model, stats = run.model, run.stats
    last = stats.frame().query("epoch == 1").set_index("layer")
    assert set(stats.last_gradients) == set(stats.last_weights) == {"dense_1", "output"}
    for name, gradient in stats.last_gradients.items():
        kernel = model.get_layer(name).kernel.numpy()
        assert gradient.shape == kernel.shape
        np.testing.assert_allclose(stats.last_weights[name], kernel)
        assert np.linalg.norm(gradient) == pytest.approx(last.loc[name, "grad_norm"], rel=1e-5)


def test_non_finite_weights_are_recorded_and_survive_a_json_round_trip() -> None:
    from dlrun.diagnostics.statistics import gradient_statistics

    def infinite_weight(model) -> None:
        layer = model.get_layer("dense_1")
        kernel = layer.kernel.numpy()
        kernel[0, 0] = np.inf
        layer.kernel.assign(kernel)

    run = fitted("model.units=[16]", "optimizer=sgd", epochs=1, before=infinite_weight)
    frame = run.stats.frame()
    assert np.isinf(frame.loc[0, "weight_norm"]) and not np.isfinite(frame["loss"]).any()  # recorded, no crash
    state = json.loads(json.dumps(run.stats.checkpoint_state(), allow_nan=False))  # strict JSON: no NaN literal
    restored = gradient_statistics(run.model, run.x, run.y)
    restored.restore_checkpoint_state(state)
    pd.testing.assert_frame_equal(restored.frame(), frame)


def test_a_resumed_run_compares_its_next_update_with_the_restored_weights() -> None:
    from dlrun.diagnostics.statistics import gradient_statistics

    run = fitted("model.units=[16]", epochs=2)
    model = run.model
    state = json.loads(json.dumps(run.stats.checkpoint_state()))
    resumed = gradient_statistics(model, run.x, run.y)
    resumed.restore_checkpoint_state(state)
    before = model.get_layer("dense_1").kernel.numpy()
    model.fit(run.data.train, epochs=3, initial_epoch=2, verbose=0, callbacks=[resumed], shuffle=False)
    after = model.get_layer("dense_1").kernel.numpy()
    frame = resumed.frame()
    assert sorted(frame["epoch"].unique()) == [0, 1, 2, 3]  # no second epoch-0 row
    ratio = layer_rows(frame, "dense_1").loc[3, "update_ratio"]
    assert ratio == pytest.approx(np.linalg.norm(after - before) / np.linalg.norm(before), rel=1e-5)


# ------------------------------------------------------------------------ plot
def constructed_frame(activations, epochs: int = 4) -> pd.DataFrame:
    rows = []
    for epoch in range(epochs + 1):
        for i, activation in enumerate(activations):
            name = "output" if i == len(activations) - 1 else f"dense_{i + 1}"
            rows.append({"epoch": epoch, "layer": name, "activation": activation, "units": 8,
                         "grad_norm": 10.0 ** (i - 3) / (epoch + 1), "weight_norm": 3.0,
                         "update_ratio": np.nan if epoch == 0 else 0.1,
                         "dead_fraction": 0.1 * epoch if activation == "relu" else np.nan,
                         "saturated_fraction": 0.2 if activation in ("sigmoid", "tanh") else np.nan, "loss": 1.0})
    return pd.DataFrame(rows, columns=list(STAT_COLUMNS))


def drawn(monkeypatch, frame: pd.DataFrame, path: Path) -> Any:
    """gradient_plot's figure (kept for inspection) after it wrote `path`."""
    figures = []
    save = plots._save

    def spy(fig, target):
        figures.append(fig)
        return save(fig, target)

    monkeypatch.setattr(plots, "_save", spy)
    plots.gradient_plot(frame, path, title="digits: mlp adam")
    assert path.read_bytes()[:8] == PNG
    return figures[0]


def test_gradient_plot_shows_every_layer_on_a_log_axis(tmp_path: Path, monkeypatch) -> None:
    frame = constructed_frame(["relu", "sigmoid", "tanh", "softmax"])
    fig = drawn(monkeypatch, frame, tmp_path / "gradients.png")
    left, right = fig.axes
    assert left.get_yscale() == "log"
    assert len(left.get_lines()) == 4
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "dense_1 (relu)", "dense_2 (sigmoid)", "dense_3 (tanh)", "output (softmax)"]  # model order
    assert len(right.get_lines()) == 3 and right.get_ylim()[0] <= 0 and right.get_ylim()[1] >= 1


def test_gradient_plot_without_relu_or_sigmoid_layers_says_so(tmp_path: Path, monkeypatch) -> None:
    frame = constructed_frame(["linear", "softmax"])
    frame.loc[frame["epoch"] == 2, "grad_norm"] = [np.nan, np.inf]  # and gaps for non-finite values
    frame.loc[frame["epoch"] == 3, "grad_norm"] = 0.0
    fig = drawn(monkeypatch, frame, tmp_path / "gradients.png")
    right = fig.axes[1]
    assert not right.get_lines() and plots.NO_UNITS_NOTE in [t.get_text() for t in right.texts]


def test_gradient_plot_of_an_empty_or_all_nan_frame_still_writes(tmp_path: Path) -> None:
    frame = constructed_frame(["relu", "softmax"])
    frame["grad_norm"] = np.nan
    plots.gradient_plot(frame, tmp_path / "nan.png")
    plots.gradient_plot(pd.DataFrame(columns=list(STAT_COLUMNS)), tmp_path / "empty.png")
    assert (tmp_path / "nan.png").read_bytes()[:8] == PNG and (tmp_path / "empty.png").read_bytes()[:8] == PNG
