"""Multi-layer perceptron: a Dense block per entry of `units`."""
from __future__ import annotations

from typing import Any, Sequence

from dlrun.config.schema import MLPConfig, RegularizationConfig
from dlrun import regularization as R


def build_mlp(inputs: Any, cfg: MLPConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    x = keras.layers.Flatten(name="flatten")(inputs) if len(inputs.shape) > 2 else inputs
    return dense_layers(R.input_block(x, reg), cfg.units, cfg, reg)


def dense_layers(x: Any, units: Sequence[int], cfg: Any, reg: RegularizationConfig, dropout: float = 0.0) -> Any:
    """A Dense layer per entry of `units` (dense_1, dense_2, ...; `cfg.initializer`), each
    followed by regularization's batch norm, noise and dropout and `cfg.activation`
    (R.after_linear), then by `dropout` (a model's own) when > 0: the MLP, and the dense
    head of every other model."""
    import keras

    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, use_bias=R.uses_bias(reg), kernel_initializer=cfg.initializer,
                               kernel_regularizer=R.kernel_regularizer(reg), name=f"dense_{i}")(x)
        x = R.after_linear(x, reg, cfg.activation, name=f"dense_{i}")
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dense_{i}_model_dropout")(x)
    return x
