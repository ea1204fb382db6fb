"""model=residual_mlp: pre-activation residual blocks, the layer names the diagnostics
read (block{i}_dense{j} and its block{i}_dense{j}_act), projections only where the width
changes, and an end-to-end run."""
from __future__ import annotations

from typing import Dict, List

import pytest

from dlrun.config import compose, normalize_overrides, validate
from dlrun.models import build_model
from dlrun.preflight import checked

keras = pytest.importorskip("keras")

FAST = ["debug=fast", "trainer.verbose=0"]


def built(*overrides: str):
    run = validate(compose("train", normalize_overrides(["model=residual_mlp", *FAST, *overrides], "train")))
    return run, build_model(run, checked(run)[0].meta)


def inputs_of(model) -> Dict[str, List[str]]:
    """Layer name -> the names of the layers feeding it (from the public config)."""
    out = {}
    for layer in model.get_config()["layers"]:
        names = []
        for node in layer["inbound_nodes"]:
            args = node["args"][0]
            for tensor in args if isinstance(args, list) else [args]:
                names.append(tensor["config"]["keras_history"][0])
        out[layer["name"]] = names
    return out


def names_of(model, cls) -> List[str]:
    return [layer.name for layer in model.layers if isinstance(layer, cls)]


@pytest.mark.parametrize("data,features", [("digits", 64), ("breast_cancer", 30), ("diabetes", 10)])
def test_builds_with_blocks_and_named_activations(data, features) -> None:
    units = [64, 32, 32]
    _, model = built(f"data={data}", f"model.units={units}".replace(" ", ""))
    assert model.input_shape[-1] == features
    assert names_of(model, keras.layers.Add) == ["block1_add", "block2_add", "block3_add"]
    dense = [name for name in names_of(model, keras.layers.Dense) if name != "output"]
    hidden = [f"block{i}_dense{j}" for i in (1, 2, 3) for j in (1, 2)]
    # a projection only where the width changes: features -> 64 (not for digits' 64 pixels), 64 -> 32
    skips = (["block1_skip"] if features != 64 else []) + ["block2_skip"]
    assert sorted(dense) == sorted(hidden + skips)
    activations = names_of(model, keras.layers.Activation)
    assert activations == [f"{name}_act" for name in hidden]  # every nonlinearity belongs to one Dense layer
    for name in skips:
        assert model.get_layer(name).get_config()["activation"] == "linear"
    assert all(model.get_layer(name).get_config()["activation"] == "linear" for name in hidden)


def test_pre_activation_identity_path() -> None:
    """He et al. 2016: the sums pass from block to block untouched; each block's Dense
    layers read the activated sum, and the head reads the last activation."""
    _, model = built("model.units=[64,64,64]", "model.block_layers=2")
    feeds = inputs_of(model)
    assert feeds["block1_add"] == ["features", "block1_dense2"]  # digits: 64 features, no projection
    assert feeds["block2_add"] == ["block1_add", "block2_dense2"]
    assert feeds["block3_add"] == ["block2_add", "block3_dense2"]
    assert feeds["block1_dense2_act"] == ["block1_add"]
    assert feeds["block2_dense1"] == ["block1_dense2_act"]
    assert feeds["block2_dense2"] == ["block2_dense1_act"]
    assert feeds["output"] == ["block3_dense2_act"]


def test_projection_reads_the_activated_input() -> None:
    _, model = built("model.units=[64,32]", "model.block_layers=1")
    feeds = inputs_of(model)
    assert feeds["block2_skip"] == ["block1_dense1_act"] == feeds["block2_dense1"]
    assert feeds["block2_add"] == ["block2_skip", "block2_dense1"]


@pytest.mark.parametrize("layers", [1, 3])
def test_block_layers(layers) -> None:
    _, model = built("model.units=[16,16]", f"model.block_layers={layers}")
    expected = [f"block{i}_dense{j}" for i in (1, 2) for j in range(1, layers + 1)]
    assert [n for n in names_of(model, keras.layers.Dense) if n not in ("output", "block1_skip")] == expected
    assert names_of(model, keras.layers.Activation) == [f"{name}_act" for name in expected]


def test_regularization_applies_inside_blocks() -> None:
    run, model = built("model.units=[16,16]", "regularization=[batchnorm,l2,dropout]", "model.activation=sigmoid",
                       "model.initializer=glorot_uniform")
    hidden = [f"block{i}_dense{j}" for i in (1, 2) for j in (1, 2)]
    assert names_of(model, keras.layers.BatchNormalization) == [f"{n}_bn" for n in hidden]
    assert names_of(model, keras.layers.Dropout) == [f"{n}_dropout" for n in hidden]
    for name in hidden:
        layer = model.get_layer(name)
        assert not layer.use_bias  # batch norm right after: its shift replaces the bias
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
        assert type(layer.kernel_initializer).__name__ == "GlorotUniform"
    assert model.get_layer("block1_dense1_act").get_config()["activation"] == "sigmoid"
    assert isinstance(model.get_layer("block1_skip").kernel_regularizer, keras.regularizers.L2)


def test_auto_initializer_is_resolved_by_task() -> None:
    _, model = built("data=diabetes")
    assert type(model.get_layer("block1_dense1").kernel_initializer).__name__ == "GlorotUniform"
    _, model = built("data=digits")
    assert type(model.get_layer("block1_dense1").kernel_initializer).__name__ == "HeUniform"


def test_trains_end_to_end_on_digits(tmp_path) -> None:
    from dlrun.training import train

    overrides = ["model=residual_mlp", "model.units=[32,32]", "trainer.epochs=2", "trainer.verbose=0",
                 "trainer.save_model=false", "regularization=none"]
    run = validate(compose("train", normalize_overrides(overrides, "train")))
    result = train(run, tmp_path)
    assert result.status == "completed"
    assert result.metrics["epochs_run"] == 2
    assert result.metrics["test"]["accuracy"] > 0.5  # chance is 0.1
    assert (tmp_path / "history.csv").exists()
