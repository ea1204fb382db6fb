"""Multi-layer perceptron: a Dense block per entry of `units`."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import MLPConfig, RegularizationConfig
from dlrun import regularization as R


def build_mlp(inputs: Any, cfg: MLPConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    x = keras.layers.Flatten(name="flatten")(inputs) if len(inputs.shape) > 2 else inputs
    x = R.input_block(x, reg)
    for i, units in enumerate(cfg.units, start=1):
        x = keras.layers.Dense(units, use_bias=R.uses_bias(reg), kernel_initializer=cfg.initializer,
                               kernel_regularizer=R.kernel_regularizer(reg), name=f"dense_{i}")(x)
        x = R.after_linear(x, reg, cfg.activation, name=f"dense_{i}")
    return x
