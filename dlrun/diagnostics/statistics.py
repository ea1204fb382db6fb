"""Per-epoch gradient and activation statistics on a fixed batch of training rows.

The callback only measures: one row per (epoch, kernel layer) goes into a frame, and
the pure rules in dlrun/diagnostics/rules.py judge that frame. Epoch 0 is the model
before training, so every later row can be compared with where the run started.

One measurement is one forward and backward pass over the fixed batch through a
sub-model whose outputs are the ReLU/sigmoid/tanh activations and the model's
outputs, with `training=False`: dropout and noise are off and batch normalization
reads its moving statistics without updating them, so measuring leaves training
untouched (the trained weights are bit-identical with and without it). The loss is
the model's own (`model.compute_loss`: the compiled loss plus the kernel penalties);
class weights are not applied to the fixed batch.

STRATEGY, traced or eager. Measured on the 2-core machine (shared with other jobs, so
+-30%), 256 rows, the best of 5 fresh models in one process:
                              trace + first run   traced call   eager call (first)
    digits MLP [256] (default)  19 + 15 = 34 ms      0.4 ms       3.2 ms (18 ms)
    10 sigmoid layers of 64     57 + 41 = 98 ms      0.9 ms       9.7 ms (25 ms)
The first model of a process pays ~60 ms more once (TensorFlow's own first use of
these ops); inside `fit` a traced call takes ~0.9 ms (the data pipeline's threads
compete for the two cores). Tracing pays for itself after about 6 (default) to 9
(10 layers) measurements, so a fit measures eagerly when fewer than TRACE_MIN_CALLS
measurements are still to come (debug=fast, a 1-epoch run: ~30 ms in all) and traced
otherwise; a search trial builds a new model, so each trial traces once. Measuring
time over fit time, median of 3 runs: default `dlrun train` (early-stopped at epoch
38) 4-6%, 100 epochs 4-5%; 10 sigmoid layers 4-5%; a 10-trial random search 3-5%.
What made it that cheap: autograph off (its first use costs ~130 ms), every kernel in
one flat vector reduced per layer by one segment_sum (a tf.norm per layer made the
trace twice as long), and a reduction over the rows before comparing (0.02 ms per
ReLU layer against 0.17 ms for comparing every activation first). Not used: turning
grappler off for this one function saves another 9 ms (default) to 28 ms (10 layers)
per trace, but only through TensorFlow internals.
"""
from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

STAT_COLUMNS = ("epoch", "layer", "activation", "units", "grad_norm", "weight_norm", "update_ratio",
                "dead_fraction", "saturated_fraction", "loss")
DEAD_ACTIVATIONS = ("relu",)       # a unit of these is dead when it outputs exactly 0 for every row
SIGMOID_LOW = 0.01                 # a sigmoid unit below this ...
SIGMOID_HIGH = 0.99                # ... or above this is pinned at a bound (slope under 0.01)
TANH_BOUND = 0.99                  # a tanh unit with |output| above this is pinned at +-1 (slope under 0.02)
SATURATED_OUTSIDE = {"sigmoid": (SIGMOID_LOW, SIGMOID_HIGH),  # saturated: outside (low, high) on every row
                     "tanh": (-TANH_BOUND, TANH_BOUND)}
SATURATING_ACTIVATIONS = tuple(SATURATED_OUTSIDE)
TRACE_MIN_CALLS = 8                # trace the measurement when at least this many are still to come (see STRATEGY)
_FLOAT_COLUMNS = ("grad_norm", "weight_norm", "update_ratio", "dead_fraction", "saturated_fraction", "loss")


def kernel_layers(model: Any) -> List[Any]:
    """The layers with a kernel (Dense, Conv2D), in model order."""
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]


def activation_name(fn: Any) -> str:
    """'relu', 'sigmoid', 'linear', ... for a Keras activation function (or its name)."""
    if fn is None or isinstance(fn, str):
        return fn or "linear"
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


def activation_of(model: Any, layer: Any) -> Any:
    """The layer whose output is `layer`'s activation: dlrun names it f'{name}_act'
    (the kernel layer itself is linear then); otherwise the kernel layer's own output
    (an output layer with softmax/sigmoid/linear)."""
    try:
        return model.get_layer(f"{layer.name}_act")
    except ValueError:
        return layer


def _json_float(value: float) -> Any:
    """A value JSON can hold: NaN and +-inf become the strings 'nan', 'inf', '-inf'
    (float() reads them back; strict JSON has no NaN)."""
    return value if math.isfinite(value) else str(value)


def _from_json(value: Any) -> float:
    return float("nan") if value is None else float(value)


class _Probe:
    """The measuring pass of one model on the fixed batch. `eager(x, y)` and its traced
    twin `traced(x, y)` return (values, gradients, kernels): values is one float64
    vector [grad norms (one per layer), weight norms, update ratios, the dead or
    saturated fraction of each layer in `tracked`, loss], so a measurement costs one
    copy to the host; the gradients and kernels only with keep_tensors."""

    def __init__(self, model: Any, x: Any, y: Any, keep_tensors: bool) -> None:
        import keras
        import tensorflow as tf

        self.model, self.keep_tensors = model, keep_tensors
        self.layers = kernel_layers(model)
        act_layers = [activation_of(model, layer) for layer in self.layers]
        self.activations = [activation_name(getattr(a, "activation", None)) for a in act_layers]
        self.units = [int(a.output.shape[-1]) for a in act_layers]
        self.tracked = [i for i, name in enumerate(self.activations)
                        if name in DEAD_ACTIVATIONS or name in SATURATING_ACTIVATIONS]
        outputs: List[Any] = []
        for tensor in [act_layers[i].output for i in self.tracked] + list(model.outputs):
            if all(tensor is not seen for seen in outputs):  # an output layer's activation is a model output too
                outputs.append(tensor)
        position = lambda t: next(j for j, seen in enumerate(outputs) if seen is t)  # noqa: E731
        self.act_index = [position(act_layers[i].output) for i in self.tracked]
        self.pred_index = [position(t) for t in model.outputs]
        self.sub = keras.Model(model.inputs, outputs, name=f"{model.name}_probe")
        self.x, self.y = tf.constant(x), tf.constant(y)
        # every kernel as one flat float64 vector; `segments` says which layer each entry is
        # of, so one segment_sum per quantity replaces a few ops per layer (shorter trace)
        sizes = [int(np.prod(layer.kernel.shape)) for layer in self.layers]
        self.segments = tf.constant(np.repeat(np.arange(len(sizes)), sizes).astype("int32"))
        # the kernels at the previous row (a model without kernels is never measured)
        self.previous = tf.Variable(self._flat_kernels(), trainable=False) if self.layers else None
        self.eager = self._measure
        # autograph=False: nothing here needs converting, and autograph's first use in a
        # process costs ~130 ms more; the batch's shape never changes, so one trace
        self.traced = tf.function(self._measure, autograph=False)

    def _flat_kernels(self, tensors: Optional[List[Any]] = None) -> Any:
        import tensorflow as tf

        tensors = [layer.kernel for layer in self.layers] if tensors is None else tensors
        # float64: squares of float32 values overflow above ~1e19, and exploding gradients get there
        return tf.cast(tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0), tf.float64)

    def remember_kernels(self) -> None:
        """The current kernels become the 'previous' ones of the next update ratio."""
        if self.layers:
            self.previous.assign(self._flat_kernels())

    def _measure(self, x: Any, y: Any) -> Any:
        import tensorflow as tf

        variables = [layer.kernel for layer in self.layers]
        with tf.GradientTape() as tape:
            outs = self.sub(x, training=False)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            preds = [outs[i] for i in self.pred_index]
            loss = self.model.compute_loss(x=x, y=y, y_pred=preds[0] if len(preds) == 1 else preds, training=False)
        grads = tape.gradient(loss, variables)
        kernels = [tf.convert_to_tensor(v) for v in variables]
        grads = [tf.zeros_like(k) if g is None else g for g, k in zip(grads, kernels)]
        now, before = self._flat_kernels(kernels), tf.convert_to_tensor(self.previous)
        sums = [tf.math.segment_sum(tf.square(v), self.segments)
                for v in (self._flat_kernels(grads), now, now - before, before)]
        self.previous.assign(now)
        fractions = []
        for i, j in zip(self.tracked, self.act_index):
            a = tf.reshape(outs[j], [-1, self.units[i]])  # rows (and positions, in a convolution) by units
            # a reduction over the rows first, then one comparison per unit (see STRATEGY)
            if self.activations[i] in DEAD_ACTIVATIONS:  # ReLU outputs are >= 0: dead iff the largest is 0
                unit = tf.equal(tf.reduce_max(a, axis=0), 0)
            else:  # outside [low, high] on every row iff even the closest row is farther than half from mid
                low, high = SATURATED_OUTSIDE[self.activations[i]]
                unit = tf.reduce_min(tf.abs(a - (low + high) / 2), axis=0) > (high - low) / 2
            fractions.append(tf.reduce_mean(tf.cast(unit, tf.float64), keepdims=True))
        values = tf.concat([tf.sqrt(sums[0]), tf.sqrt(sums[1]), tf.sqrt(sums[2] / sums[3]), *fractions,
                            tf.reshape(tf.cast(loss, tf.float64), [1])], axis=0)
        return (values, grads, kernels) if self.keep_tensors else (values, [], [])


def gradient_statistics(model: Any, x: Any, y: Any, keep_gradients: bool = False) -> Any:
    """A Keras callback that measures `model` on the fixed batch (`x`, `y`: NumPy
    arrays as the compiled loss expects them) before training (epoch 0) and after every
    epoch: one row per kernel layer with the columns STAT_COLUMNS (see `frame()`).
    With keep_gradients, `last_gradients` and `last_weights` (layer name -> array) hold
    the latest measurement's kernels' gradients and values, for histograms."""
    import keras

    class GradientStatistics(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: List[Dict[str, Any]] = []
            self.seconds = 0.0  # time spent measuring, to report the overhead
            self.traced = False  # whether measurements run as one traced graph (see STRATEGY)
            self.last_gradients: Dict[str, np.ndarray] = {}
            self.last_weights: Dict[str, np.ndarray] = {}
            self._probe: Optional[_Probe] = None

        def _get_probe(self) -> _Probe:
            if self._probe is None:
                self._probe = _Probe(model, x, y, keep_gradients)
            return self._probe

        def on_train_begin(self, logs: Optional[Dict] = None) -> None:
            if not self.rows:
                epochs = (getattr(self, "params", None) or {}).get("epochs")
                self._record(0, calls_left=None if epochs is None else int(epochs) + 1)

        def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
            epochs = (getattr(self, "params", None) or {}).get("epochs")
            self._record(epoch + 1, calls_left=None if epochs is None else int(epochs) - epoch)

        def _record(self, epoch: int, calls_left: Optional[int]) -> None:
            started = time.perf_counter()
            probe = self._get_probe()
            if probe.layers:
                if not self.traced and (calls_left is None or calls_left >= TRACE_MIN_CALLS):
                    self.traced = True
                measure = probe.traced if self.traced else probe.eager
                values, grads, kernels = measure(probe.x, probe.y)
                self._add_rows(epoch, probe, values.numpy())
                if keep_gradients:
                    names = [layer.name for layer in probe.layers]
                    self.last_gradients = {n: np.asarray(g) for n, g in zip(names, grads)}
                    self.last_weights = {n: np.asarray(k) for n, k in zip(names, kernels)}
            self.seconds += time.perf_counter() - started

        def _add_rows(self, epoch: int, probe: _Probe, values: np.ndarray) -> None:
            n = len(probe.layers)
            grad, weight, ratio = values[:n], values[n:2 * n], values[2 * n:3 * n]
            fraction = dict(zip(probe.tracked, values[3 * n:-1]))
            first = not self.rows  # no earlier kernels to compare with (restored rows bring theirs)
            nan = float("nan")
            for i, layer in enumerate(probe.layers):
                name = probe.activations[i]
                self.rows.append({"epoch": int(epoch), "layer": layer.name, "activation": name,
                                  "units": probe.units[i], "grad_norm": float(grad[i]),
                                  "weight_norm": float(weight[i]), "update_ratio": nan if first else float(ratio[i]),
                                  "dead_fraction": float(fraction[i]) if name in DEAD_ACTIVATIONS else nan,
                                  "saturated_fraction": float(fraction[i]) if name in SATURATING_ACTIVATIONS else nan,
                                  "loss": float(values[-1])})

        def frame(self) -> pd.DataFrame:
            """One row per (epoch, kernel layer), the columns STAT_COLUMNS in order."""
            return pd.DataFrame(self.rows, columns=list(STAT_COLUMNS))

        def checkpoint_state(self) -> Dict[str, Any]:  # see dlrun.checkpoints: kept across a resume
            return {"rows": [{k: _json_float(v) if k in _FLOAT_COLUMNS else v for k, v in row.items()}
                             for row in self.rows]}

        def restore_checkpoint_state(self, state: Dict[str, Any]) -> None:
            """The rows of `state`; the next update ratio compares with the model's
            current (restored) kernels."""
            self.rows = [{k: _from_json(v) if k in _FLOAT_COLUMNS else v for k, v in row.items()}
                         for row in state["rows"]]
            self._get_probe().remember_kernels()

    return GradientStatistics()
