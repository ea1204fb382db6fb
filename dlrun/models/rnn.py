"""Recurrent baseline (no attention): token vectors read in order by LSTM or GRU layers,
one per entry of `units` (each but the last hands its whole sequence on; padding is
skipped through the mask), optionally in both directions; the last one's final state,
joined with a text row's other features, feeds the output. Text or images (row by row,
or patch by patch; see dlrun.models.sequence_layers)."""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import RegularizationConfig, RNNConfig
from dlrun import regularization as R


def build_rnn(inputs: Any, cfg: RNNConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    from dlrun.models.sequence_layers import sequence_head, sequence_input

    x, mask, others = sequence_input(inputs, cfg, reg, meta, positions=False)  # order is what a recurrence reads
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cfg.cell]
    for i, units in enumerate(cfg.units, start=1):
        layer = cell(units, activation=cfg.activation, dropout=cfg.dropout, return_sequences=i < len(cfg.units),
                     kernel_regularizer=R.kernel_regularizer(reg), name=f"{cfg.cell}_{i}")
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        x = layer(x) if mask is None else layer(x, mask=mask)  # explicit mask, as in attention.py
    if reg.dropout is not None and reg.dropout.rate > 0:
        x = keras.layers.Dropout(reg.dropout.rate, name="recurrent_dropout")(x)
    return sequence_head(x, others, [], cfg, reg)  # the other features joined; the recurrence is the model
