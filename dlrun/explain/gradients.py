"""Gradient explanations of image models: saliency and SmoothGrad, integrated gradients
and Grad-CAM.

The core functions are pure, in Captum's shape: (keras model, inputs, targets, options)
-> attributions shaped like the inputs (Grad-CAM: like the conv layer's map). A target
is a row's class code (index into the classes; for a single sigmoid or margin output,
class 0 reads the output with its sign flipped) or None for regression (the output).
The method wrappers at the bottom (`saliency`, `integrated_gradients`, `grad_cam`, as
the registry names them) run them on an `Explained` run and return figures, a table,
checks and summary lines. TensorFlow and tf-keras-vis are imported inside functions."""
from __future__ import annotations

import weakref
from collections import Counter
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import ExplainConfig
from dlrun.errors import ConfigError
from dlrun.explain.base import Explained, MethodResult, keras_list_input_quiet, numpy_global_rng

IG_GOAL = 0.01          # completeness: |sum(attributions) - (f(x) - f(baseline))| below 1% of the difference
IG_MAX_STEPS = 1024     # integrated gradients doubles its steps up to this many
POINT_BUDGET = 1 << 22  # input values per gradient call (16 MB of float32): bounds memory on large images
# Layers that keep a conv map's shape value by value: Grad-CAM reads the map after them (the
# conv's activation), as the Grad-CAM paper and Keras' tutorial do; dlrun's CNNs put the
# activation in its own layer after each Conv2D. INFERENCE_IDENTITY ones are walked past, not chosen.
INFERENCE_IDENTITY = {"Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                      "ActivityRegularization"}
ELEMENTWISE = {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "BatchNormalization", "LayerNormalization",
               "GroupNormalization"} | INFERENCE_IDENTITY
_TRACED: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------- targets and model heads
def _units(model: Any) -> int:
    return int(model.outputs[0].shape[-1])


def _index_sign(model: Any, targets: Optional[np.ndarray], n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per row: which output its score reads, and the sign (-1: class 0 of a single output)."""
    if _units(model) == 1:
        sign = np.ones(n, "float32") if targets is None else np.where(np.asarray(targets) == 0, -1.0, 1.0)
        return np.zeros(n, "int32"), sign.astype("float32")
    index = np.zeros(n, "int32") if targets is None else np.asarray(targets, dtype="int32").reshape(n)
    return index, np.ones(n, "float32")


def _squashing_head(model: Any) -> bool:
    """Whether the output layer ends in a softmax or sigmoid (gradients read the score before it)."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation is not None and getattr(activation, "__name__", "") not in ("linear", "identity")


def _tf_keras_vis(kind: str, model: Any) -> Any:
    """A tf-keras-vis Saliency or Gradcam on `model`, its output activation made linear
    (`ReplaceToLinear`: class scores before softmax/sigmoid, which do not saturate). That
    clones the model (~15 ms here); a linear head is used as it is."""
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    if kind == "saliency":
        from tf_keras_vis.saliency import Saliency as Tool
    else:
        from tf_keras_vis.gradcam import Gradcam as Tool
    return Tool(model, model_modifier=ReplaceToLinear() if _squashing_head(model) else None, clone=True)


def _score(model: Any, targets: Optional[np.ndarray], n: int) -> Callable:
    """The tf-keras-vis score of each row's target."""
    index, sign = _index_sign(model, targets, n)
    if _units(model) > 1:
        from tf_keras_vis.utils.scores import CategoricalScore

        return CategoricalScore([int(i) for i in index])
    return lambda output: output[:, 0] * sign  # one output: the sign picks class 0 or 1


def _gradient_function(model: Any) -> Callable:
    """(x, output index, sign) -> (score, d score / d x) of `model`, traced once per model
    (tf.function: ~10x faster than eager for the many calls integrated gradients makes)."""
    fn = _TRACED.get(model)
    if fn is not None:
        return fn
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    ref = weakref.ref(model)  # the cache holds the function: a strong reference would keep the model alive

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32)])
    def fn(x: Any, index: Any, sign: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.cast(tf.reshape(ref()(x, training=False), (tf.shape(x)[0], -1)), tf.float32)
            score = tf.gather(out, index, batch_dims=1) * sign
        return score, tape.gradient(score, x)

    _TRACED[model] = fn
    return fn


def target_scores(model: Any, inputs: np.ndarray, targets: Optional[np.ndarray] = None) -> np.ndarray:
    """Each row's target score as the model outputs it (probability, or -p for class 0 of a
    sigmoid: the same differences as 1 - p), the f of integrated gradients."""
    x = np.asarray(inputs, dtype="float32")
    index, sign = _index_sign(model, targets, len(x))
    return np.asarray(_gradient_function(model)(x, index, sign)[0], dtype="float64")


# ----------------------------------------------------------------- core attributions
def saliency_map(model: Any, inputs: np.ndarray, targets: Optional[np.ndarray] = None) -> np.ndarray:
    """|d score / d input| per pixel (Simonyan et al. 2013), the score read before the output's
    softmax/sigmoid. tf-keras-vis `Saliency`; shaped like `inputs`."""
    x = np.asarray(inputs, dtype="float32")
    with keras_list_input_quiet():
        found = _tf_keras_vis("saliency", model)(_score(model, targets, len(x)), x, keepdims=True,
                                                 normalize_map=False)
    return np.asarray(found, dtype="float64")


def smoothgrad(model: Any, inputs: np.ndarray, targets: Optional[np.ndarray] = None, samples: int = 20,
               noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): the saliency map averaged over `samples` noisy copies
    of each row, noise std `noise` times the image's value range. tf-keras-vis `Saliency`
    with smooth_samples; shaped like `inputs`."""
    x = np.asarray(inputs, dtype="float32")
    with numpy_global_rng(seed), keras_list_input_quiet():  # tf-keras-vis draws noise from NumPy's generator
        found = _tf_keras_vis("saliency", model)(_score(model, targets, len(x)), x, smooth_samples=samples,
                                                 smooth_noise=noise, keepdims=True, normalize_map=False)
    return np.asarray(found, dtype="float64")


def ig_attributions(model: Any, inputs: np.ndarray, baselines: Optional[np.ndarray] = None,
                    targets: Optional[np.ndarray] = None, n_steps: int = 64) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017) of each row's target score (the model's
    own output: probability or value), along the straight path from the baseline (default:
    zeros, a black image) to the row; the path integral by Gauss-Legendre quadrature with
    `n_steps` points, as Captum does. Written by hand: tf-keras-vis has no integrated gradients."""
    x = np.asarray(inputs, dtype="float32")
    base = np.zeros_like(x) if baselines is None else np.broadcast_to(np.asarray(baselines, "float32"), x.shape)
    index, sign = _index_sign(model, targets, len(x))
    fn = _gradient_function(model)
    return path_integral(x, base, lambda path, rows: fn(path, index[rows], sign[rows])[1], n_steps)


def path_integral(x: np.ndarray, base: np.ndarray, gradients: Callable[[np.ndarray, np.ndarray], Any],
                  n_steps: int) -> np.ndarray:
    """(x - base) times the mean gradient along the straight path from `base` to `x`, per row:
    integrated gradients of whatever `gradients(points, rows)` differentiates (the points on the
    path, and which row each belongs to). Gauss-Legendre quadrature with `n_steps` points, in
    calls of at most POINT_BUDGET values."""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, weights = ((nodes + 1) / 2).astype("float32"), (weights / 2).astype("float32")
    shape = (-1,) + (1,) * (x.ndim - 1)
    total = np.zeros(x.shape, "float64")
    per_call = max(1, POINT_BUDGET // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x) * n_steps, per_call):
        point = np.arange(start, min(start + per_call, len(x) * n_steps))
        rows, step = np.divmod(point, n_steps)
        path = base[rows] + alphas[step].reshape(shape) * (x[rows] - base[rows])
        grads = np.asarray(gradients(path, rows), dtype="float64") * weights[step].reshape(shape)
        firsts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        total[rows[firsts]] += np.add.reduceat(grads, firsts, axis=0)
    return (x - base).astype("float64") * total


def completeness_error(model: Any, inputs: np.ndarray, baselines: Optional[np.ndarray],
                       targets: Optional[np.ndarray], attributions: np.ndarray) -> np.ndarray:
    """Per row: |sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)|, the
    completeness axiom's error (0 for exact integrated gradients)."""
    x = np.asarray(inputs, dtype="float32")
    base = np.zeros_like(x) if baselines is None else np.broadcast_to(np.asarray(baselines, "float32"), x.shape)
    delta = target_scores(model, x, targets) - target_scores(model, base, targets)
    total = np.asarray(attributions, dtype="float64").reshape(len(x), -1).sum(axis=1)
    return np.abs(total - delta) / np.maximum(np.abs(delta), 1e-12)


def conv_maps(model: Any) -> List[str]:
    """Per 2-D convolutional layer, the name of the layer whose output is its feature map as
    the next block sees it: the conv moved on past the layers that keep its map's shape value
    by value (its activation, batch norm; dropout and noise are walked past, not chosen)."""
    layers = list(model.layers)
    names = []
    for i, conv in enumerate(layers):
        if "Conv" not in type(conv).__name__ or len(conv.output.shape) != 4:
            continue
        chosen = conv
        for layer in layers[i + 1:]:
            kind = type(layer).__name__
            if kind not in ELEMENTWISE or tuple(layer.output.shape) != tuple(conv.output.shape):
                break
            if kind not in INFERENCE_IDENTITY:
                chosen = layer
        names.append(chosen.name)
    return names


def conv_layer(model: Any) -> Optional[str]:
    """Grad-CAM's default layer: the last conv layer's map after its activation (`conv_maps`);
    None if the model has no 2-D convolution."""
    maps = conv_maps(model)
    return maps[-1] if maps else None


def grad_cam_map(model: Any, inputs: np.ndarray, targets: Optional[np.ndarray] = None,
                 layer_name: Optional[str] = None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): the conv map's channels weighed by the mean gradient
    of the target score (before softmax/sigmoid), summed, ReLU: (n, map height, map width),
    >= 0. `layer_name` defaults to `conv_layer(model)`. tf-keras-vis `Gradcam`, told the layer
    (its own search stops at the Conv2D, before dlrun's separate activation layer)."""
    layer = layer_name or conv_layer(model)
    if layer is None:
        raise ConfigError("explain.methods", "grad_cam",
                          "needs a convolutional layer (Grad-CAM weighs its feature maps); this model has none")
    x = np.asarray(inputs, dtype="float32")
    with keras_list_input_quiet():
        cam = _tf_keras_vis("grad_cam", model)(_score(model, targets, len(x)), x, penultimate_layer=layer,
                                               seek_penultimate_conv_layer=False, expand_cam=False,
                                               normalize_cam=False)
    return np.asarray(cam, dtype="float64").reshape(len(x), *np.shape(cam)[1:3])


def upsample(maps: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(n, h', w') maps resized bilinearly to (n, *size): a Grad-CAM map over the input."""
    import tensorflow as tf

    maps = np.asarray(maps, dtype="float32")
    if maps.shape[1:3] == tuple(size):
        return maps.astype("float64")
    return np.asarray(tf.image.resize(maps[..., None], size, method="bilinear"))[..., 0].astype("float64")


# ----------------------------------------------------------------- where the maps look
def _plane(maps: np.ndarray) -> np.ndarray:
    """(n, h, w[, c]) -> (n, h, w) of |values|, channels summed."""
    maps = np.abs(np.asarray(maps, dtype="float64"))
    return maps.sum(axis=-1) if maps.ndim == 4 else maps


def _centre(h: int, w: int) -> Tuple[slice, slice]:
    """The central half of an h x w image (half its height, half its width)."""
    return slice(h // 4, h - h // 4), slice(w // 4, w - w // 4)


def central_share(maps: np.ndarray) -> float:
    """Mean over rows of the share of |map| in the image's central half."""
    plane = _plane(maps)
    rows, cols = _centre(*plane.shape[1:3])
    total = plane.reshape(len(plane), -1).sum(axis=1)
    inside = plane[:, rows, cols].reshape(len(plane), -1).sum(axis=1)
    kept = total > 0
    return float(np.mean(inside[kept] / total[kept])) if kept.any() else float("nan")


def _where(maps: np.ndarray) -> str:
    """'the central 4x4 of 8x8 (25% of the pixels)'."""
    h, w = _plane(maps).shape[1:3]
    rows, cols = _centre(h, w)
    ch, cw = rows.stop - rows.start, cols.stop - cols.start
    return f"the central {ch}x{cw} of the {h}x{w} image ({ch * cw / (h * w):.0%} of its pixels)"


def common_peak(maps: np.ndarray) -> Tuple[int, int, int]:
    """(row, column, rows peaking there): the most common location of each row's maximum
    (all-zero maps have none; (-1, -1, 0) if every map is zero)."""
    peaks = [np.unravel_index(int(np.argmax(p)), p.shape) for p in _plane(maps) if p.max() > 0]
    if not peaks:
        return -1, -1, 0
    (r, c), count = Counter((int(r), int(c)) for r, c in peaks).most_common(1)[0]
    return r, c, count


def _peak_line(maps: np.ndarray) -> str:
    """Where the maps peak: one pixel if most rows agree on it, else the most common ninth
    of the image (a 3x3 grid), which reads better for larger images."""
    r, c, count = common_peak(maps)
    n, h, w = _plane(maps).shape
    if count == 0:
        return "is zero for every row"
    if 2 * count >= n:
        return f"peaks at row {r}, column {c} of {h}x{w} (0 = top left) for {count} of {n} rows"
    plane = _plane(maps)
    ninths = Counter(_ninth(*np.unravel_index(int(np.argmax(p)), p.shape), h, w) for p in plane if p.max() > 0)
    where, count = ninths.most_common(1)[0]
    return f"peaks in the {where} of the image (a 3x3 grid) for {count} of {n} rows"


def _ninth(r: int, c: int, h: int, w: int) -> str:
    vertical = ("top", "middle", "bottom")[min(2, 3 * r // h)]
    horizontal = ("left", "centre", "right")[min(2, 3 * c // w)]
    return "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"


def _percent(error: float) -> str:
    """0.0035 -> '0.35%', 0.25 -> '25%'."""
    if error != error:
        return "n/a"
    return f"{error * 100:.0f}%" if error >= 0.1 else f"{error * 100:.2g}%"


# ----------------------------------------------------------------- methods (registry)
def _rows(model: Explained) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray, List[str]]:
    """The explained rows' inputs, targets (predicted classes; None for regression), outputs
    and figure titles."""
    if not model.rows:
        raise ConfigError("explain.rows", model.rows, "no test rows to explain")
    x = np.asarray(model.x_test[model.rows], dtype="float32")
    outputs = model.outputs(x)
    predicted = model.predicted(outputs)
    targets = None if model.task == "regression" else np.asarray(predicted, dtype=int)
    titles = [f"test row {row}: true {model.label(model.y_test[row])}, predicted {model.label(guess)}"
              for row, guess in zip(model.rows, predicted)]
    return x, targets, outputs, titles


def saliency(model: Explained, options: ExplainConfig) -> MethodResult:
    """Saliency and SmoothGrad maps of the explained rows: saliency.png."""
    from dlrun.explain import image_plots

    x, targets, _, titles = _rows(model)
    plain = saliency_map(model.model, x, targets)
    smooth = smoothgrad(model.model, x, targets, options.smooth_samples, options.smooth_noise, options.seed)
    figure = image_plots.saliency_figure(
        x, plain, smooth, titles, model.value_range,
        f"saliency |d score / d pixel| (score before softmax/sigmoid) over the input\nSmoothGrad: mean of "
        f"{options.smooth_samples} noisy copies (noise std {options.smooth_noise:g} of the image's range)")
    lines = [f"{central_share(plain):.0%} of the gradient mass (SmoothGrad {central_share(smooth):.0%}) "
             f"lies in {_where(x)}, mean over {len(x)} rows",
             f"SmoothGrad {_peak_line(smooth)}"]
    return MethodResult(figures={"saliency.png": figure}, lines=lines)


def integrated_gradients(model: Explained, options: ExplainConfig) -> MethodResult:
    """Integrated gradients from a black (all-zero) image, steps doubled until complete within
    1%: integrated_gradients.png and .csv, and the completeness check. A model of text: token
    by token (dlrun.explain.token_gradients)."""
    from dlrun.explain import image_plots

    if model.text is not None:
        from dlrun.explain.token_gradients import integrated_gradients as of_tokens

        return of_tokens(model, options)
    x, targets, outputs, titles = _rows(model)
    base = np.zeros_like(x)
    steps = options.ig_steps
    while True:
        attributions = ig_attributions(model.model, x, base, targets, steps)
        errors = completeness_error(model.model, x, base, targets, attributions)
        if errors.max() < IG_GOAL or steps >= IG_MAX_STEPS:
            break
        steps = min(2 * steps, IG_MAX_STEPS)
    worst = float(errors.max())
    passed = worst < IG_GOAL
    base_out = model.outputs(base)
    if model.task == "regression":
        out, base_score, target_class = outputs, base_out, [""] * len(x)
    else:
        out = outputs[np.arange(len(x)), targets]
        base_score = base_out[np.arange(len(x)), targets]
        target_class = [model.label(t) for t in targets]
    table = pd.DataFrame({
        "test_row": model.rows, "data_row": [int(model.data_rows[r]) for r in model.rows],
        "true": [model.label(model.y_test[r]) for r in model.rows],
        "predicted": [model.label(p) for p in model.predicted(outputs)], "target_class": target_class,
        "output": out, "baseline_output": base_score,
        "attribution_sum": attributions.reshape(len(x), -1).sum(axis=1), "completeness_error": errors,
        "steps": steps})
    check = (f"max error {_percent(worst)} of f(x) - f(baseline) over {len(x)} rows with {steps} steps "
             f"(goal < 1%{'' if passed else ': not met'})")
    figure = image_plots.attribution_figure(x, attributions, titles, model.value_range,
                                            f"integrated gradients ({steps} steps) from a black (all-zero) "
                                            "image\nred: for the target, blue: against it (black pixels get "
                                            "none: they equal the baseline)")
    signed = attributions.reshape(len(x), -1)
    positive = float(np.clip(signed, 0, None).sum() / max(np.abs(signed).sum(), 1e-300))
    lines = [f"integrated gradients (baseline: a black, all-zero image; {steps} steps): "
             f"{central_share(attributions):.0%} of |attribution| lies in {_where(x)}; "
             f"{positive:.0%} of it is positive (for the target), mean over {len(x)} rows"]
    return MethodResult(tables={"integrated_gradients.csv": table},
                        figures={"integrated_gradients.png": figure},
                        checks={"integrated gradients completeness": check}, passed=passed, lines=lines)


def grad_cam(model: Explained, options: ExplainConfig) -> MethodResult:
    """Grad-CAM heatmaps of the last conv layer, upsampled over the inputs: grad_cam.png."""
    from dlrun.explain import image_plots

    layer = conv_layer(model.model)
    x, targets, _, titles = _rows(model)
    cams = grad_cam_map(model.model, x, targets, layer)
    over = upsample(cams, x.shape[1:3])
    figure = image_plots.grad_cam_figure(x, over, titles, model.value_range, layer, cams.shape[1:3])
    empty = int(np.sum(cams.reshape(len(x), -1).max(axis=1) <= 0))
    lines = [f"Grad-CAM (layer {layer}, map {cams.shape[1]}x{cams.shape[2]}): attention {_peak_line(over)}; "
             f"{central_share(over):.0%} of it in {_where(x)}"]
    if empty:
        lines.append(f"Grad-CAM: {empty} of {len(x)} rows have an all-zero map (no positive evidence "
                     f"for the target in {layer})")
    return MethodResult(figures={"grad_cam.png": figure}, lines=lines)
