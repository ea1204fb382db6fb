"""A small Transformer encoder, as in Keras's "Text classification with Transformer"
example: token vectors (+ positions) -> `layers` blocks of multi-head self-attention and a
feed-forward part (each with a residual and layer norm) -> pooling (padding left out) ->
the text row's other features joined -> a dense head of `units`. Reads a text column or an
image as a sequence of rows or patches (see dlrun.models.sequence_layers).

The attention layers are named attention_1..attention_N and called with
`return_attention_scores=True`, so their weights stay part of the saved graph:
`keras.Model(model.inputs, model.get_layer("attention_1").output[1])` hands them out
(dlrun/attention_maps.py)."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import AttentionConfig, RegularizationConfig
from dlrun import regularization as R


def build_attention(inputs: Any, cfg: AttentionConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    from dlrun.models.sequence_layers import SequencePooling, sequence_head, sequence_input

    x, mask, others = sequence_input(inputs, cfg, reg, meta, positions=cfg.positions)
    penalty = R.kernel_regularizer(reg)
    masks = {} if mask is None else {"value_mask": mask}  # explicit: Keras's propagated mask is lost after block 1
    for i in range(1, cfg.layers + 1):
        attended, _ = keras.layers.MultiHeadAttention(
            num_heads=cfg.heads, key_dim=cfg.dim // cfg.heads, dropout=cfg.dropout, kernel_regularizer=penalty,
            name=f"attention_{i}")(x, x, return_attention_scores=True, **masks)
        x = _residual(x, attended, cfg.dropout, f"block_{i}_attention")
        hidden = keras.layers.Dense(cfg.ff_units, activation=cfg.activation, kernel_initializer=cfg.initializer,
                                    kernel_regularizer=penalty, name=f"block_{i}_ff_1")(x)
        hidden = keras.layers.Dense(cfg.dim, kernel_initializer=cfg.initializer, kernel_regularizer=penalty,
                                    name=f"block_{i}_ff_2")(hidden)
        x = _residual(x, hidden, cfg.dropout, f"block_{i}_ff")
    x = SequencePooling(cfg.pooling, name="pooling")(x, mask=mask)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="pooling_dropout")(x)
    return sequence_head(x, others, cfg.units, cfg, reg)


def _residual(x: Any, update: Any, dropout: float, name: str) -> Any:
    """LayerNorm(x + Dropout(update)): the post-norm residual of the Keras example."""
    import keras

    if dropout > 0:
        update = keras.layers.Dropout(dropout, name=f"{name}_dropout")(update)
    x = keras.layers.Add(name=f"{name}_residual")([x, update])
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)
