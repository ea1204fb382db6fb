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
    import keras

    return keras.layers.Dense(meta.n_outputs, activation=output_activation(meta, run.loss.name),
                              kernel_initializer="glorot_uniform",
                              kernel_regularizer=kernel_regularizer(run.regularization),
                              dtype="float32", name="output")(x)
