"""Feature visualization by activation maximization: the input that most excites a
unit (a conv filter's mean activation, or a class's score), found by gradient ascent
on the input from a gray, slightly noisy start. Regularized as Yosinski et al. (2015):
an L2 decay toward the data's mean value each step, a light Gaussian blur every few
steps, and the input clipped to the training data's range, so images stay readable.

Written by hand under one tf.function per layer (200 steps in well under a second):
tf-keras-vis' ActivationMaximization runs its steps eagerly and by default jitters and
rotates the input, which smears images of 8x8 pixels."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.errors import ConfigError, one_of
from dlrun.explain.base import Explained, MethodResult

AUTO_FILTERS = 4      # units: auto shows the first 4 filters of a layer
AUTO_CLASSES = 10     # ... and each class, up to 10, of the output layer
STEP = 0.05           # per step, pixels move by about this fraction of the data range (gradient normalized per image)
DECAY = 0.02          # L2 decay: each step pulls the image this fraction of the way back to the data's mean
BLUR_EVERY = 4        # a 3x3 Gaussian blur every this many steps (high frequencies fade)
START_NOISE = 0.1     # the start: the data's mean value plus uniform noise of this fraction of the range
RETRY_NOISE = 0.5     # a unit off for that start (ReLU: no gradient) starts again from noise over the whole range
SQUASHING = ("softmax", "sigmoid")


def _conv_layers(model: Any) -> List[Any]:
    """Each conv layer's map after its activation: the spatial mean of a linear filter is
    largest for a flat image, the mean of its ReLU for the filter's pattern, tiled."""
    from dlrun.explain.gradients import conv_maps

    return [model.get_layer(name) for name in conv_maps(model)]


def _inputs(model: Any) -> Any:
    """The model's input tensor (a list of one would make Keras warn on every call)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _find(model: Any, name: str) -> Any:
    for layer in model.layers:
        if layer.name == name:
            return layer
    raise ConfigError("explain.layer", name, one_of(name, [layer.name for layer in model.layers]))


def unit_values(model: Any, layer: Any) -> Tuple[Callable[[Any], Any], int]:
    """(x -> (n, units) tensor, units): what activation maximization raises for `layer`: a
    filter's activation averaged over the map, a dense unit's value. For the model's last
    layer, the score before its softmax/sigmoid (the probability could also rise by pushing
    the other classes down): a sub-model to the Dense layer's input, times its kernel, plus
    its bias; for a separate Activation layer, its input."""
    import keras
    import tensorflow as tf

    last = layer is model.layers[-1]
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if last and activation in SQUASHING and hasattr(layer, "kernel") and len(layer.output.shape) == 2:
        body = keras.Model(_inputs(model), layer.input)

        def values(x: Any) -> Any:
            logits = tf.matmul(body(x, training=False), tf.cast(layer.kernel, tf.float32))
            return logits + tf.cast(layer.bias, tf.float32) if layer.bias is not None else logits
        return values, int(layer.output.shape[-1])
    if last and type(layer).__name__ in ("Activation", "Softmax"):
        tensor = layer.input
    else:
        tensor = layer.output
    sub = keras.Model(_inputs(model), tensor)
    units = int(tensor.shape[-1])

    def values(x: Any) -> Any:
        out = tf.cast(sub(x, training=False), tf.float32)
        return tf.reduce_mean(tf.reshape(out, (tf.shape(x)[0], -1, units)), axis=1)
    return values, units


def _blur(x: Any) -> Any:
    """A 3x3 Gaussian blur per channel (reflected edges)."""
    import tensorflow as tf

    k = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.tile(tf.reshape(k[:, None] * k[None, :], (3, 3, 1, 1)), (1, 1, tf.shape(x)[-1], 1))
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")


def activation_maximization(model: Any, layer_name: str, units: Sequence[int], steps: int,
                            value_range: Tuple[float, float], center: Optional[float] = None,
                            seed: int = 0, noise: float = START_NOISE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each unit of `layer_name`: (the input found after `steps` ascent steps, its
    activation at the start, at the end). The start is `center` (default: the middle of
    `value_range`) plus uniform noise of `noise` times the range; inputs stay in the range."""
    import tensorflow as tf

    values, _ = unit_values(model, _find(model, layer_name))
    lo, hi = float(value_range[0]), float(value_range[1])
    span = hi - lo if hi > lo else 1.0
    mid = float(center) if center is not None else (lo + hi) / 2
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    start = np.clip(mid + noise * span * rng.uniform(-1, 1, (len(units), *shape)), lo, hi).astype("float32")
    image = len(shape) == 3

    @tf.function
    def ascend(x: Any, index: Any, n: Any) -> Any:
        def chosen(x: Any) -> Any:
            return tf.gather(values(x), index, batch_dims=1)

        first = chosen(x)
        for i in tf.range(n):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(chosen(x))
            grad = tape.gradient(total, x)
            axes = list(range(1, len(shape) + 1))
            grad = grad / (tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True)) + 1e-12)
            x = mid + (1.0 - DECAY) * (x + STEP * span * grad - mid)
            if image:
                if i % BLUR_EVERY == BLUR_EVERY - 1:
                    x = _blur(x)
            x = tf.clip_by_value(x, lo, hi)
        return x, first, chosen(x)

    found, first, last = ascend(tf.constant(start), tf.constant(np.asarray(units, "int32")), tf.constant(steps))
    return np.array(found), np.array(first, "float64"), np.array(last, "float64")


def _plan(model: Explained, options: ExplainConfig) -> List[Tuple[Any, List[int], int]]:
    """(layer, units to visualize, the layer's unit count), checked against the model."""
    keras_model = model.model
    if options.layer is not None:
        layers = [_find(keras_model, options.layer)]
    else:
        layers = _conv_layers(keras_model) + [keras_model.layers[-1]]
    plan = []
    for layer in layers:
        _, count = unit_values(keras_model, layer)
        if options.units == "auto":
            units = list(range(min(AUTO_CLASSES if layer is keras_model.layers[-1] else AUTO_FILTERS, count)))
        else:
            units = [int(u) for u in options.units]
            if max(units) >= count:
                raise ConfigError("explain.units", options.units,
                                  f"layer {layer.name} has {count} units (0 to {count - 1})")
        plan.append((layer, units, count))
    return plan


def _class_name(model: Explained, layer: Any, unit: int, count: int) -> str:
    """The class a unit of the output layer scores ('' for other layers and regression)."""
    if layer is not model.model.layers[-1] or model.task == "regression" or not model.classes:
        return ""
    if count == 1:  # one sigmoid or margin output: its score is the positive class's
        return str(model.classes[-1])
    return str(model.classes[unit]) if unit < len(model.classes) else ""


DEAD_CHECK_ROWS = 512  # training images a unit that would not rise is tried on: 0 on all = a dead unit


def _ascend_layer(model: Explained, layer: Any, units: List[int], options: ExplainConfig,
                  value_range: Tuple[float, float], center: float
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int, List[int]]:
    """(images, start and end activations, units restarted, units dead on the training data)
    for one layer: units that did not rise from the gray start (a ReLU off everywhere gives
    no gradient) start again from noise over the whole range."""
    import tensorflow as tf

    found, first, last = activation_maximization(model.model, layer.name, units, options.steps, value_range,
                                                 center, options.seed)
    stuck = np.flatnonzero(last <= first)
    dead: List[int] = []
    if len(stuck):
        again = activation_maximization(model.model, layer.name, [units[i] for i in stuck], options.steps,
                                        value_range, center, options.seed + 1, noise=RETRY_NOISE)
        found[stuck], first[stuck], last[stuck] = again
        values, _ = unit_values(model.model, layer)
        sample = tf.constant(np.asarray(model.x_train[:DEAD_CHECK_ROWS], dtype="float32"))
        peak = np.asarray(values(sample)).max(axis=0)
        dead = [units[i] for i in stuck if last[i] <= first[i] and peak[units[i]] <= 0]
    return found, first, last, len(stuck), dead


def feature_visualization(model: Explained, options: ExplainConfig) -> MethodResult:
    """Activation maximization for `options.units` of `options.layer` (default: each conv
    layer's activations and the output layer): feature_visualization.png and .csv."""
    from dlrun.explain import image_plots

    records, images, titles, dead = [], [], [], []
    restarted = 0
    value_range = model.value_range  # the input is kept in it
    center = float(np.mean(model.x_train))                                      # and decays toward it
    for layer, units, count in _plan(model, options):
        found, first, last, again, off = _ascend_layer(model, layer, units, options, value_range, center)
        restarted += again
        dead += [f"{layer.name} #{u}" for u in off]
        names = [_class_name(model, layer, u, count) for u in units]
        images.append(list(found))
        titles.append([(f"{layer.name}: {name}" if name else f"{layer.name} #{u}") + (" (dead)" if u in off else "")
                       for u, name in zip(units, names)])
        records += [{"layer": layer.name, "unit": u, "class": name, "activation_start": a, "activation_end": b}
                    for u, name, a, b in zip(units, names, first, last)]
    table = pd.DataFrame(records, columns=["layer", "unit", "class", "activation_start", "activation_end"])
    rose = table["activation_end"] > table["activation_start"]
    figure = image_plots.feature_figure(images, titles, f"inputs that most excite each unit ({options.steps} "
                                                        "steps of gradient ascent; output layer: the class score "
                                                        "before softmax)")
    check = f"activation rose for {int(rose.sum())} of {len(table)} units in {options.steps} steps"
    if restarted:
        check += f"; {restarted} restarted from noise over the whole range (off for a gray start)"
    if dead:
        check += f"; dead (0 on the first {DEAD_CHECK_ROWS} training images, no gradient): {', '.join(dead)}"
    failed = [f"{r.layer} #{r.unit}" for r in table[~rose].itertuples() if f"{r.layer} #{r.unit}" not in dead]
    if failed:
        check += f"; did not rise: {', '.join(failed)}"
    lines = []
    for name, part in table.groupby("layer", sort=False):
        lines.append(f"{name}: mean activation {part['activation_start'].mean():.3g} at the start, "
                     f"{part['activation_end'].mean():.3g} after the ascent ({len(part)} units)")
    return MethodResult(tables={"feature_visualization.csv": table}, figures={"feature_visualization.png": figure},
                        checks={"feature visualization ascent": check}, passed=not failed, lines=lines)
