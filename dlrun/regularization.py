"""Regularization applied to the built model: kernel penalties, dropout, batch
normalization, Gaussian noise (layers), and early stopping (a callback).
Every present section of `RegularizationConfig` is applied; they combine freely."""
from __future__ import annotations

from typing import Any, List, Optional

from dlrun.config.schema import RegularizationConfig


def kernel_regularizer(reg: RegularizationConfig) -> Optional[Any]:
    """keras L1/L2/L1L2 penalty for every kernel, or None."""
    import keras

    k = reg.kernel
    if k is None or (k.l1 == 0 and k.l2 == 0):
        return None
    if k.l1 and k.l2:
        return keras.regularizers.L1L2(l1=k.l1, l2=k.l2)
    return keras.regularizers.L1(k.l1) if k.l1 else keras.regularizers.L2(k.l2)


def input_block(x: Any, reg: RegularizationConfig) -> Any:
    """Noise and dropout on the inputs, where configured."""
    import keras

    if reg.noise is not None and reg.noise.position in ("input", "both"):
        x = keras.layers.GaussianNoise(reg.noise.stddev, name="input_noise")(x)
    if reg.dropout is not None and reg.dropout.input_rate > 0:
        x = keras.layers.Dropout(reg.dropout.input_rate, name="input_dropout")(x)
    return x


def after_linear(x: Any, reg: RegularizationConfig, activation: str, name: str) -> Any:
    """What follows a Dense/Conv layer: batch norm (before or after the activation),
    the activation, hidden noise and dropout."""
    import keras

    bn = reg.batchnorm
    if bn is not None and bn.position == "before":
        x = keras.layers.BatchNormalization(momentum=bn.momentum, name=f"{name}_bn")(x)
    x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if bn is not None and bn.position == "after":
        x = keras.layers.BatchNormalization(momentum=bn.momentum, name=f"{name}_bn")(x)
    if reg.noise is not None and reg.noise.position in ("hidden", "both"):
        x = keras.layers.GaussianNoise(reg.noise.stddev, name=f"{name}_noise")(x)
    if reg.dropout is not None and reg.dropout.rate > 0:
        x = keras.layers.Dropout(reg.dropout.rate, name=f"{name}_dropout")(x)
    return x


def uses_bias(reg: RegularizationConfig) -> bool:
    """A bias right before batch norm is redundant (BN has its own shift)."""
    return not (reg.batchnorm is not None and reg.batchnorm.position == "before")


def callbacks(reg: RegularizationConfig, has_validation: bool = True) -> List[Any]:
    """Early stopping, if configured."""
    import keras

    es = reg.early_stopping
    if es is None:
        return []
    return [keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
                                          restore_best_weights=es.restore_best_weights, verbose=0)]
