"""Losses by name, chosen to fit the task ('auto'), plus quantile and custom."""
from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from dlrun.config.imports import check_import
from dlrun.config.schema import RunConfig
from dlrun.data import DataMeta
from dlrun.errors import ConfigError

AUTO = {"multiclass": "sparse_categorical_crossentropy", "binary": "binary_crossentropy", "regression": "mse"}
KERAS_NAMES = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "msle": "MeanSquaredLogarithmicError",
               "log_cosh": "LogCosh", "binary_crossentropy": "BinaryCrossentropy",
               "categorical_crossentropy": "CategoricalCrossentropy",
               "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy", "hinge": "Hinge"}


def resolved_name(run: RunConfig, meta: DataMeta) -> str:
    return AUTO[meta.task] if run.loss.name == "auto" else run.loss.name


@lru_cache(maxsize=None)
def _quantile_class() -> Any:
    import keras

    @keras.saving.register_keras_serializable(package="dlrun")
    class QuantileLoss(keras.losses.Loss):
        """Pinball loss: under-prediction costs `quantile`, over-prediction 1 - quantile."""

        def __init__(self, quantile: float = 0.5, name: str = "quantile", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.quantile = quantile

        def call(self, y_true: Any, y_pred: Any) -> Any:
            y_true = keras.ops.reshape(keras.ops.cast(y_true, y_pred.dtype), keras.ops.shape(y_pred))
            err = y_true - y_pred
            return keras.ops.mean(keras.ops.maximum(self.quantile * err, (self.quantile - 1.0) * err), axis=-1)

        def get_config(self) -> dict:
            return {**super().get_config(), "quantile": self.quantile}

    return QuantileLoss


UNSCALED_LOSSES = ("msle",)  # needs non-negative values: acts on the target's own units


@lru_cache(maxsize=None)
def _standardized_class() -> Any:
    import keras

    @keras.saving.register_keras_serializable(package="dlrun")
    class StandardizedLoss(keras.losses.Loss):
        """A regression loss computed on the standardised target: (y - mean) / std for
        both the truth and the prediction. The model answers in the target's units
        (see dlrun.models.heads), while the loss, its gradients and its settings
        (huber.delta, quantile) are in standard deviations of the training target."""

        def __init__(self, inner: Any = None, mean: float = 0.0, std: float = 1.0, name: str = "loss",
                     **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.inner, self.mean, self.std = inner, float(mean), float(std)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            ops = keras.ops
            y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
            fn = self.inner.call if isinstance(self.inner, keras.losses.Loss) else self.inner
            return fn((y_true - self.mean) / self.std, (y_pred - self.mean) / self.std)

        def get_config(self) -> dict:
            return {**super().get_config(), "mean": self.mean, "std": self.std}

    return StandardizedLoss


def import_function(path: str, key: str) -> Any:
    """The callable at dotted `path` (module.attr), or a ConfigError naming `key`."""
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(key, path, f"cannot import module {module_name!r} ({err})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(key, path, f"module {module_name!r} has no function {attr!r}")
    return fn


def build_loss(run: RunConfig, meta: DataMeta) -> Any:
    """The loss for `run`; for a regression target with data.target_scaling=standard
    (the default), computed on the standardised target (all but msle)."""
    loss = _base_loss(run, meta)
    name = resolved_name(run, meta)
    if meta.task == "regression" and meta.target_scale is not None and name not in UNSCALED_LOSSES:
        mean, std = meta.target_scale
        return _standardized_class()(loss, mean, std, name=name)
    return loss


def _base_loss(run: RunConfig, meta: DataMeta) -> Any:
    import keras

    name = resolved_name(run, meta)
    if name == "huber":
        return keras.losses.Huber(delta=run.loss.delta)
    if name == "quantile":
        return _quantile_class()(quantile=run.loss.quantile)
    if name == "custom":
        check_import("loss.function", run.loss.function, run.allowed_imports)  # validated already; API users too
        return import_function(run.loss.function, "loss.function")
    return getattr(keras.losses, KERAS_NAMES[name])()
