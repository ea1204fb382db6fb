"""Convolutional network for image-shaped data: a Conv2D block (+ max-pooling)
per entry of `filters`, then a dense head of `units`."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import CNNConfig, RegularizationConfig
from dlrun import regularization as R
from dlrun.models.mlp import dense_layers


def build_cnn(inputs: Any, cfg: CNNConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    x = R.input_block(inputs, reg)
    for i, filters in enumerate(cfg.filters, start=1):
        x = keras.layers.Conv2D(filters, cfg.kernel_size, padding=cfg.padding, use_bias=R.uses_bias(reg),
                                kernel_initializer=cfg.initializer,
                                kernel_regularizer=R.kernel_regularizer(reg), name=f"conv_{i}")(x)
        x = R.after_linear(x, reg, cfg.activation, name=f"conv_{i}")
        if cfg.pool_size > 1 and min(x.shape[1], x.shape[2]) >= cfg.pool_size:
            x = keras.layers.MaxPooling2D(cfg.pool_size, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return dense_layers(x, cfg.units, cfg, reg)
