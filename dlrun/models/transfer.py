"""Transfer learning: a keras.applications backbone (`model.backbone`) under a small
dense head. Images arrive with pixels in [0, 1] (1 or 3 channels) and are made into
what the backbone was trained on inside the model, from standard Keras layers only,
so the saved model.keras loads with plain `keras.models.load_model`:

    gray_to_rgb (1 channel only) -> resize (when model.input_size differs)
    -> to_255 (pixels in [0, 255]) -> the backbone's own preprocessing
    -> backbone (no top, pooled to a vector) -> dense_i ... -> head_dropout

The backbone's preprocessing is one of (BACKBONES[...].preprocessing):
  included  nothing here: the model rescales [0, 255] itself (MobileNetV3, EfficientNet, ConvNeXt)
  tf        Rescaling to [-1, 1]
  torch     Normalization by ImageNet's channel means and standard deviations
  caffe     RGB -> BGR (a fixed 1x1 convolution) and ImageNet's BGR means subtracted

model.freeze=true trains the head only: the backbone is not trainable, and its batch
norm layers run in inference mode. In Keras 3 that inference mode comes from the
layers being frozen: `backbone(x, training=False)` is kept as the guide to transfer
learning writes it, but a functional model passes its own `training` flag on to
nested models, so it does not hold by itself. `unfreeze_top` (the second phase)
therefore keeps every BatchNormalization layer frozen."""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Dict, List, Optional

from dlrun import regularization as R
from dlrun.config.schema import RegularizationConfig, TransferConfig
from dlrun.errors import ConfigError
from dlrun.models.backbones import BACKBONES, Backbone
from dlrun.models.mlp import dense_layers
from dlrun.models.transfer_checks import (check_input_size, check_weights, check_weights_file, input_size,
                                          is_imagenet, is_random, load_failure_message, weights_path)

BACKBONE_NAME = "backbone"  # model.get_layer(BACKBONE_NAME) is the keras.applications model
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # "torch" preprocessing, as fractions of 255
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # "caffe" preprocessing, in [0, 255] units, BGR order
# keras builds EfficientNetB0-B3 with one more input layer (a Rescaling that completes
# their ImageNet normalization) only when asked for weights="imagenet" by name: built
# from the file's path they would lack it. These take the name; keras then finds the
# file in its cache (check_weights put it there) and checks its hash.
IMAGENET_BY_NAME = ("EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3")


def build_transfer(inputs: Any, cfg: TransferConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    """The features tensor of a pretrained backbone and its head (the caller adds the
    output layer). `inputs`: images (height, width, 1 or 3) with pixels in [0, 1]."""
    import keras

    spec = BACKBONES[cfg.backbone]
    if len(inputs.shape) != 4 or inputs.shape[-1] not in (1, 3):
        raise ConfigError("model", "transfer", f"needs images of shape (height, width, 1 or 3 channels); "
                          f"the data's are {tuple(inputs.shape[1:])}")
    height, width, channels = (int(d) for d in inputs.shape[1:])
    check_input_size(cfg, height, width)
    size = input_size(cfg, height, width)

    x = R.input_block(inputs, reg)
    if channels == 1:
        x = keras.layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    if size != [height, width]:
        x = keras.layers.Resizing(size[0], size[1], name="resize")(x)
    x = keras.layers.Rescaling(255.0, name="to_255")(x)
    x = backbone_preprocessing(x, spec.preprocessing)

    backbone = build_backbone(cfg, size)
    backbone.trainable = not cfg.freeze
    x = backbone(x, training=False) if cfg.freeze else backbone(x)

    x = dense_layers(x, cfg.units, cfg, reg)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    return x


def backbone_preprocessing(x: Any, mode: str) -> Any:
    """Pixels in [0, 255] (RGB) made into what a backbone of preprocessing `mode` expects
    (keras.applications.imagenet_utils.preprocess_input), as fixed standard layers."""
    import keras
    import numpy as np

    if mode == "included":
        return x
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="imagenet_scaling")(x)
    if mode == "torch":
        return keras.layers.Normalization(mean=[m * 255.0 for m in IMAGENET_MEAN_RGB],
                                          variance=[(s * 255.0) ** 2 for s in IMAGENET_STD_RGB],
                                          name="imagenet_normalization")(x)
    if mode == "caffe":
        swap = keras.layers.Conv2D(3, 1, use_bias=False, trainable=False, name="rgb_to_bgr")
        x = swap(x)
        swap.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)])  # output c reads input 2-c
        return keras.layers.Normalization(mean=list(CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0],
                                          name="imagenet_mean")(x)
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def build_backbone(cfg: TransferConfig, size: List[int]) -> Any:
    """keras.applications' model for `cfg.backbone` without its top, pooled, named
    BACKBONE_NAME, with the weights model.weights asks for. A weights file that does
    not fit it becomes one ConfigError line naming the file."""
    import keras

    spec = BACKBONES[cfg.backbone]
    constructor = getattr(keras.applications, spec.constructor)
    kwargs: Dict[str, Any] = dict(include_top=False, input_shape=(size[0], size[1], 3), pooling=cfg.pooling)
    if "include_preprocessing" in inspect.signature(constructor).parameters:
        kwargs["include_preprocessing"] = True  # MobileNetV3, EfficientNetV2, ConvNeXt: rescale [0, 255] inside
    weights = _weights_argument(cfg, spec)
    if weights is None:
        backbone = constructor(weights=None, **kwargs)
    else:
        # Keras warns (once per layer) about parts of a file that do not fit before it
        # raises; a layer left at its random start is a failed load too.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                backbone = constructor(weights=weights, **kwargs)
            except (ValueError, OSError, KeyError) as err:
                raise load_failure_message(cfg, err) from None
        partial = [w for w in caught if "freshly-initialized" in str(w.message)]
        if partial:
            raise load_failure_message(cfg, ValueError(f"{len(partial)} parts of the model kept random weights"))
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    backbone.name = BACKBONE_NAME
    return backbone


def _weights_argument(cfg: TransferConfig, spec: Backbone) -> Optional[str]:
    """keras.applications' `weights=`: None, a file path, or "imagenet" for the models
    that build differently for it (IMAGENET_BY_NAME). The pre-flight check has normally
    fetched ImageNet's file already; it is checked (and fetched) again only when missing,
    so that building a model in each trial of a search does not re-hash the file."""
    if is_random(cfg):
        return None
    if is_imagenet(cfg):
        path = weights_path(cfg)
        if path is None or not path.is_file():
            path = check_weights(cfg)
        return "imagenet" if spec.constructor in IMAGENET_BY_NAME else str(path)
    return str(check_weights_file(cfg))


def _batchnorm_frozen(layer: Any) -> None:
    """Freeze every BatchNormalization layer in `layer` (and in layers nested in it)."""
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False
    for inner in getattr(layer, "layers", []):
        _batchnorm_frozen(inner)


def unfreeze_top(model: Any, layers: int) -> int:
    """The second phase of fine-tuning: the backbone's top `layers` layers become
    trainable and every layer below stays frozen, as do all BatchNormalization layers
    (in inference mode: their statistics are ImageNet's, and a small batch would
    overwrite them). The head is untouched (trainable). Recompile the model afterwards
    for the change to take effect. Returns how many of the backbone's weight tensors
    are now trainable."""
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.trainable = True
    start = max(len(backbone.layers) - int(layers), 0)
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= start
        _batchnorm_frozen(layer)
    return len(backbone.trainable_weights)


def backbone_summary(model: Any) -> Dict[str, int]:
    """The backbone's size and how much of it trains, for metrics.json."""
    backbone = model.get_layer(BACKBONE_NAME)

    def count(weights: Any) -> int:
        total = 0
        for w in weights:
            n = 1
            for d in w.shape:
                n *= int(d)
            total += n
        return total

    return {"backbone_layers": len(backbone.layers),
            "backbone_trainable_layers": sum(1 for layer in backbone.layers if layer.trainable_weights),
            "backbone_trainable_params": count(backbone.trainable_weights),
            "backbone_non_trainable_params": count(backbone.non_trainable_weights)}


__all__ = ["build_transfer", "build_backbone", "backbone_preprocessing", "unfreeze_top", "backbone_summary",
           "BACKBONE_NAME"]
