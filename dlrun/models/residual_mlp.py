"""Residual MLP: blocks of Dense layers with a skip connection around each block.

The blocks are He et al.'s *pre-activation* residual units ("Identity Mappings in Deep
Residual Networks", 2016, Fig. 4(e)), written for Dense layers:

    s_0 = features
    s_i = skip(s_{i-1}) + Dense(act(... Dense(act(Dense(in_i))) ...))
    in_i = act(s_{i-1})  (in_1 = the features, already scaled)
    output head <- act(s_last)

Each block's last Dense layer is linear and its sum passes to the next block untouched,
so the path s_0 -> s_last holds no nonlinearity: the gradient reaches the first block
without being multiplied by an activation's derivative once per layer (the point of the
lesson on vanishing gradients; He et al. found post-activation units, act(x + F(x)),
and a nonlinearity before the addition both train worse). Batch norm, when chosen, sits
next to each activation (`regularization.batchnorm.position`), as in their BN -> ReLU.

`skip` is the identity, or a linear Dense projection (`block{i}_skip`, no activation)
where the width changes, including the first block, whose input is the features. As in
fb.resnet.torch's pre-activation units, a projection reads the activated input that the
block's Dense layers read.

Names (diagnostics rely on them): the j-th Dense layer of block i is `block{i}_dense{j}`,
and the activation applied to its output is `block{i}_dense{j}_act` -- for a block's last
layer, applied to the sum that includes it (the next block's pre-activation, or the final
one before the head). Every nonlinearity thus belongs to exactly one named Dense layer:
units [64]*5 with block_layers=2 is ten sigmoid layers, as in a plain ten-layer MLP.
"""
from __future__ import annotations

from typing import Any

from dlrun.config.schema import RegularizationConfig, ResidualMLPConfig
from dlrun import regularization as R


def build_residual_mlp(inputs: Any, cfg: ResidualMLPConfig, reg: RegularizationConfig, meta: Any = None) -> Any:
    import keras

    def dense(units: int, name: str) -> Any:
        return keras.layers.Dense(units, use_bias=R.uses_bias(reg), kernel_initializer=cfg.initializer,
                                  kernel_regularizer=R.kernel_regularizer(reg), name=name)

    x = keras.layers.Flatten(name="flatten")(inputs) if len(inputs.shape) > 2 else inputs
    x = R.input_block(x, reg)
    total, activated = x, x  # the running sum (s_i) and what the next block reads (act(s_i))
    for i, units in enumerate(cfg.units, start=1):
        if total.shape[-1] == units:
            skip = total
        else:
            skip = keras.layers.Dense(units, use_bias=False, kernel_initializer=cfg.initializer,
                                      kernel_regularizer=R.kernel_regularizer(reg), name=f"block{i}_skip")(activated)
        h = activated
        for j in range(1, cfg.block_layers + 1):
            h = dense(units, f"block{i}_dense{j}")(h)
            if j < cfg.block_layers:
                h = R.after_linear(h, reg, cfg.activation, name=f"block{i}_dense{j}")
        total = keras.layers.Add(name=f"block{i}_add")([skip, h])
        activated = R.after_linear(total, reg, cfg.activation, name=f"block{i}_dense{cfg.block_layers}")
    return activated
