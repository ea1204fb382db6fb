"""Bag-of-tokens baseline (no attention, no order unless model.positions): token vectors
pooled into one (mean or max, padding left out), dropout, a text row's other features
joined, then a dense head of `units`. Text or images (see dlrun.models.sequence_layers)."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import PooledEmbeddingConfig, RegularizationConfig


def build_pooled_embedding(inputs: Any, cfg: PooledEmbeddingConfig, reg: RegularizationConfig,
                           meta: Any = None) -> Any:
    import keras

    from dlrun.models.sequence_layers import SequencePooling, sequence_head, sequence_input

    x, mask, others = sequence_input(inputs, cfg, reg, meta, positions=cfg.positions)
    x = SequencePooling(cfg.pooling, name="pooling")(x, mask=mask)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="pooling_dropout")(x)
    return sequence_head(x, others, cfg.units, cfg, reg)
