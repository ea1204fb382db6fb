"""The output layer, chosen from the task (and the loss, for hinge)."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import RunConfig
from dlrun.data import DataMeta
from dlrun.regularization import kernel_regularizer


def output_activation(meta: DataMeta, loss_name: str) -> str:
    if meta.task == "multiclass":
        return "softmax"
    if meta.task == "binary":
        return "linear" if loss_name == "hinge" else "sigmoid"
    return "linear"


def output_layer(x: Any, meta: DataMeta, run: RunConfig) -> Any:
    """The output Dense layer. With target scaling (regression), a fixed Rescaling
    layer follows it: the Dense layer answers in standard deviations around the
    training mean, and the model in the target's own units (also once saved)."""
    import keras

    out = keras.layers.Dense(meta.n_outputs, activation=output_activation(meta, run.loss.name),
                             kernel_initializer="glorot_uniform",
                             kernel_regularizer=kernel_regularizer(run.regularization),
                             dtype="float32", name="output")(x)
    if meta.task == "regression" and meta.target_scale is not None:
        mean, std = meta.target_scale
        out = keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name="target_units")(out)
    return out
