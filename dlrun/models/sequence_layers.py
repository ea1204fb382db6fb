"""Small layers of the sequence models (attention, rnn, pooled_embedding): a text row's
token ids to vectors, an image to row or patch tokens, a slice of feature columns, and
mask-aware pooling. Registered under the package name "dlrun", so a saved model.keras
that uses them loads once this module is imported (`import dlrun.models.sequence_layers`).

Padding: a text row's token id 0 is padding. `TokenMask` gives the mask as a tensor of
its own, and the builders pass it explicitly (MultiHeadAttention's `value_mask`, the
recurrent layers' and the pooling's `mask`): Keras 3.15's MultiHeadAttention removes the
propagated mask from the tensors it reads, so a residual `Add` after it has no mask and
the second block would attend to padding (measured: padded keys got 1/length of the
weight in block 2 with implicit masks only)."""
from __future__ import annotations

from typing import Any, List, Optional

import keras
from keras import ops

PACKAGE = "dlrun"


def _ids(x: Any, offset: int, length: int) -> Any:
    """The token ids of flat text rows (float32, exact integers) as int32."""
    return ops.cast(ops.round(x[:, offset:offset + length]), "int32")


def _not_padding(x: Any, offset: int, length: int) -> Any:
    """(B, length) bool: True where a token is, False on padding (id 0)."""
    return ops.not_equal(_ids(x, offset, length), 0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenEmbedding(keras.layers.Layer):
    """Flat rows [other features..., token ids...] -> token vectors (B, length, dim), plus a
    learned position embedding when `positions`. Its Keras mask is `ids != 0` (padding).

    `override`: None, or a tensor (B, length, dim) that `call` uses in place of the looked-up
    token vectors (positions are still added). It is the Keras analogue of Captum's
    LayerIntegratedGradients hook: integrated gradients along a path of token vectors set
    `layer.override = path_point`, call the model under a GradientTape watching `path_point`,
    then set it back to None (dlrun/explain/token_gradients.py). It is read when `call` runs
    in Python: eagerly, or while a tf.function is traced (that function keeps the path as its
    own input); a `predict` function traced earlier keeps whatever it held then."""

    def __init__(self, offset: int, length: int, vocabulary_size: int, dim: int, positions: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset, self.length = int(offset), int(length)
        self.vocabulary_size, self.dim, self.positions = int(vocabulary_size), int(dim), bool(positions)
        self.override: Optional[Any] = None
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight(shape=(self.vocabulary_size, self.dim), initializer="uniform",
                                          name="embeddings")
        self.position_embeddings = (self.add_weight(shape=(self.length, self.dim), initializer="uniform",
                                                    name="position_embeddings") if self.positions else None)

    def ids(self, x: Any) -> Any:
        """The token ids (B, length) as int32; ids outside the vocabulary read as 1 (unknown)."""
        ids = _ids(x, self.offset, self.length)
        return ops.where((ids < 0) | (ids >= self.vocabulary_size), ops.ones_like(ids), ids)

    def token_vectors(self, x: Any) -> Any:
        """The looked-up token vectors (B, length, dim), without positions."""
        return ops.take(self.embeddings, self.ids(x), axis=0)

    def call(self, x: Any) -> Any:
        vectors = self.token_vectors(x) if self.override is None else ops.cast(self.override, self.compute_dtype)
        if self.position_embeddings is not None:
            vectors = vectors + self.position_embeddings[None, :, :]
        return vectors

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        return _not_padding(x, self.offset, self.length)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.length, self.dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "offset": self.offset, "length": self.length,
                "vocabulary_size": self.vocabulary_size, "dim": self.dim, "positions": self.positions}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenMask(keras.layers.Layer):
    """Flat text rows -> (B, length) bool: True where a token is, False on padding (id 0)."""

    def __init__(self, offset: int, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset, self.length = int(offset), int(length)

    def call(self, x: Any) -> Any:
        return _not_padding(x, self.offset, self.length)

    def compute_output_spec(self, x: Any) -> Any:
        return keras.KerasTensor((x.shape[0], self.length), dtype="bool")

    def get_config(self) -> dict:
        return {**super().get_config(), "offset": self.offset, "length": self.length}


def token_grid(image_shape: Any, patch_size: Optional[List[int]]) -> tuple:
    """(token rows, token columns, values per token) of an image (H, W, C) read one token per
    row (patch_size None) or per non-overlapping [height, width] patch."""
    height, width, channels = (int(d) for d in image_shape[-3:])
    if patch_size is None:
        return height, 1, width * channels
    ph, pw = int(patch_size[0]), int(patch_size[1])
    return height // ph, width // pw, ph * pw * channels


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageTokens(keras.layers.Layer):
    """Images (B, H, W, C) -> tokens (B, T, dim): one per image row (patch_size None: T = H,
    each of W*C values) or per non-overlapping patch (T = H/ph * W/pw, row by row), each
    projected by a Dense(dim), plus a learned position embedding when `positions`."""

    def __init__(self, patch_size: Optional[List[int]], dim: int, positions: bool = True,
                 kernel_initializer: Any = "glorot_uniform", kernel_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patch_size = None if patch_size is None else [int(p) for p in patch_size]
        self.dim, self.positions = int(dim), bool(positions)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.projection = keras.layers.Dense(self.dim, kernel_initializer=self.kernel_initializer,
                                             kernel_regularizer=self.kernel_regularizer, name="projection")

    def build(self, input_shape: Any) -> None:
        rows, cols, values = token_grid(input_shape, self.patch_size)
        self.grid = (rows, cols)
        self.projection.build((None, rows * cols, values))
        self.position_embeddings = (self.add_weight(shape=(rows * cols, self.dim), initializer="uniform",
                                                    name="position_embeddings") if self.positions else None)

    def patches(self, images: Any) -> Any:
        """The tokens' raw values (B, T, values), before the projection."""
        rows, cols, values = token_grid(images.shape, self.patch_size)
        if self.patch_size is None:
            return ops.reshape(images, (-1, rows, values))
        ph, pw = self.patch_size
        channels = images.shape[-1]
        x = ops.reshape(images, (-1, rows, ph, cols, pw, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, rows * cols, values))

    def call(self, images: Any) -> Any:
        x = self.projection(self.patches(images))
        if self.position_embeddings is not None:
            x = x + self.position_embeddings[None, :, :]
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        rows, cols, _ = token_grid(input_shape, self.patch_size)
        return (input_shape[0], rows * cols, self.dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "patch_size": self.patch_size, "dim": self.dim, "positions": self.positions,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
                if self.kernel_regularizer is not None else None}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Columns(keras.layers.Layer):
    """Feature columns [start, stop) of flat rows: a text row's other features."""

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x: Any) -> Any:
        return x[:, self.start:self.stop]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.stop - self.start)

    def get_config(self) -> dict:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequencePooling(keras.layers.Layer):
    """(B, T, D) -> (B, D): the mean or the max over the tokens, padding (mask False) left
    out. A row without any token gives zeros (not NaN, not -inf)."""

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"SequencePooling mode must be mean or max, not {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.mean(x, axis=1) if self.mode == "mean" else ops.max(x, axis=1)
        keep = ops.cast(mask, x.dtype)[:, :, None]
        if self.mode == "mean":
            return ops.sum(x * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        lowest = ops.min(x) - 1.0  # below every value, so a padded token never wins
        pooled = ops.max(ops.where(keep > 0, x, lowest), axis=1)
        return ops.where(ops.sum(keep, axis=1) > 0, pooled, ops.zeros_like(pooled))

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


# ------------------------------------------------------------ builder helpers
def sequence_input(inputs: Any, cfg: Any, reg: Any, meta: Any, positions: bool) -> tuple:
    """What every sequence model starts from: (tokens (B, T, dim), mask (B, T) bool or None,
    other features (B, F) or None). Text (`meta.text` set): the token ids embedded, the
    padding mask, and the row's other feature columns (input noise/dropout applied to those,
    never to token ids). Images: rows or patches projected (input noise/dropout first)."""
    from dlrun import regularization as R
    from dlrun.errors import ConfigError

    text = getattr(meta, "text", None)
    if text is not None:
        width = int(inputs.shape[-1])
        tokens = TokenEmbedding(text.offset, text.length, text.vocabulary_size, cfg.dim, positions,
                                name="tokens")(inputs)
        mask = TokenMask(text.offset, text.length, name="token_mask")(inputs)
        parts = [Columns(start, stop, name=name)(inputs) for start, stop, name in
                 ((0, text.offset, "other_features"), (text.offset + text.length, width, "other_features_after"))
                 if stop > start]
        others = None
        if parts:
            others = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="other_features_all")(parts)
            others = R.input_block(others, reg)
        return tokens, mask, others
    shape = tuple(inputs.shape[1:])
    if len(shape) != 3:
        raise ConfigError("model", cfg.name, f"reads a text column (data.text=COLUMN) or images (rows shaped "
                          f"[height, width, channels]); these rows have shape {list(shape)}")
    x = R.input_block(inputs, reg)
    tokens = ImageTokens(cfg.patch_size, cfg.dim, positions, kernel_initializer=cfg.initializer,
                         kernel_regularizer=R.kernel_regularizer(reg), name="tokens")(x)
    return tokens, None, None


def sequence_head(x: Any, others: Any, units: List[int], cfg: Any, reg: Any) -> Any:
    """The pooled sequence vector joined with the other features, then Dense(units...) layers
    (regularization's batch norm/noise/dropout after each, and the model's own dropout)."""
    from dlrun.models.mlp import dense_layers

    if others is not None:
        x = keras.layers.Concatenate(name="with_other_features")([x, others])
    return dense_layers(x, units, cfg, reg, dropout=cfg.dropout)


__all__ = ["TokenEmbedding", "TokenMask", "ImageTokens", "Columns", "SequencePooling", "token_grid",
           "sequence_input", "sequence_head"]
