"""Sequence models (attention, rnn, pooled_embedding) on text rows and on images read
row by row or patch by patch: they build, train, save and load; padding changes nothing;
attention weights leave padding out; TokenEmbedding.override; attention.png."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from dlrun.data.prepare import DataBundle, DataMeta, TextLayout
from tests.helpers import dlrun, make_run

keras = pytest.importorskip("keras")

from dlrun.attention_maps import attention_layers, attention_scores, token_labels, write_attention_maps  # noqa: E402
from dlrun.models import build_model  # noqa: E402
from dlrun.training import compile_model, setup_runtime  # noqa: E402

VOCAB = ["", "[UNK]"] + [f"w{i}" for i in range(18)]  # 20 ids
SMALL = {  # tiny widths: every test builds in well under a second
    "attention": ["model=attention", "model.dim=16", "model.heads=2", "model.ff_units=16", "model.units=[8]"],
    "rnn": ["model=rnn", "model.dim=8", "model.units=[8,6]"],
    "pooled_embedding": ["model=pooled_embedding", "model.dim=8", "model.units=[8]", "model.positions=true"],
}
MODELS = list(SMALL)


def text_meta(offset: int = 0, length: int = 8, task: str = "multiclass") -> DataMeta:
    names = [f"f{i}" for i in range(offset)] + [f"review[{i}]" for i in range(length)]
    classes = ["bad", "good"] if task == "binary" else ["neg", "mid", "pos"]
    return DataMeta(task=task, n_outputs=1 if task == "binary" else 3, input_shape=(offset + length,),
                    feature_names=names, target="label", classes=classes,
                    text=TextLayout(column="review", offset=offset, length=length, vocabulary=VOCAB))


def image_meta(shape=(8, 8, 1)) -> DataMeta:
    return DataMeta(task="multiclass", n_outputs=3, input_shape=shape, feature_names=[], target="digit",
                    classes=["zero", "one", "two"])


def text_rows(meta: DataMeta, n: int = 24, seed: int = 0) -> np.ndarray:
    """Rows [other features..., ids...]: texts of 1..length tokens, padded with 0."""
    rng = np.random.default_rng(seed)
    t = meta.text
    x = np.zeros((n, t.offset + t.length), "float32")
    x[:, :t.offset] = rng.normal(size=(n, t.offset))
    for i, count in enumerate(rng.integers(1, t.length + 1, n)):
        x[i, t.offset:t.offset + count] = rng.integers(1, len(VOCAB), count)
    return x


def rows_for(meta: DataMeta, n: int = 24, seed: int = 0) -> np.ndarray:
    if meta.text is not None:
        return text_rows(meta, n, seed)
    return np.random.default_rng(seed).random((n, *meta.input_shape), dtype=np.float32)


def built(name: str, meta: DataMeta, *overrides: str, compiled: bool = False):
    run = make_run(*SMALL[name], *overrides)
    setup_runtime(run.trainer)
    keras.utils.set_random_seed(0)
    return run, (compile_model(run, meta, steps_per_epoch=3) if compiled else build_model(run, meta))


INPUTS = {
    "text": (lambda: text_meta(0), ()),
    "text+features": (lambda: text_meta(3), ()),
    "image rows": (lambda: image_meta(), ()),
    "image patches": (lambda: image_meta((8, 8, 1)), ("model.patch_size=[4,2]",)),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", list(INPUTS))
def test_builds_trains_saves_and_loads(name: str, kind: str, tmp_path: Path) -> None:
    make_meta, extra = INPUTS[kind]
    meta = make_meta()
    _, model = built(name, meta, *extra, compiled=True)
    x = rows_for(meta)
    y = np.arange(len(x)) % 3
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    expected = model.predict(x, verbose=0)
    assert np.all(np.isfinite(expected))
    path = tmp_path / "m.keras"
    keras.Model(model.inputs, model.outputs).save(path)
    importlib.import_module("dlrun.models.sequence_layers")  # registers the layers (dlrun.models imports no keras)

    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_image_tokens_are_rows_or_patches() -> None:
    from dlrun.models.sequence_layers import ImageTokens

    image = np.arange(4 * 4 * 2, dtype="float32").reshape(1, 4, 4, 2)
    rows = ImageTokens(None, 3).patches(image)
    np.testing.assert_array_equal(np.asarray(rows)[0, 1], image[0, 1].ravel())
    patches = np.asarray(ImageTokens([2, 2], 3).patches(image))
    assert patches.shape == (1, 4, 8)
    np.testing.assert_array_equal(patches[0, 1], image[0, 0:2, 2:4].ravel())  # patch (1,2): row by row
    np.testing.assert_array_equal(patches[0, 2], image[0, 2:4, 0:2].ravel())


def test_text_rows_need_no_image_shape_and_other_inputs_are_refused() -> None:
    from dlrun.errors import ConfigError

    flat = DataMeta(task="multiclass", n_outputs=3, input_shape=(5,), feature_names=list("abcde"), target="y",
                    classes=[0, 1, 2])
    with pytest.raises(ConfigError, match="reads a text column"):
        built("attention", flat)


@pytest.mark.parametrize("name,extra", [("attention", ()), ("rnn", ()), ("rnn", ("model.bidirectional=true",)),
                                        ("rnn", ("model.cell=gru",)), ("pooled_embedding", ()),
                                        ("pooled_embedding", ("model.pooling=max",)),
                                        ("attention", ("model.pooling=max", "model.layers=3"))])
def test_padding_changes_nothing(name: str, extra: tuple) -> None:
    """A text's prediction is the same whether it is padded to 5 or to 12 tokens (the
    longer model gets the shorter one's weights; positions 6.. are never read)."""
    long_meta, short_meta = text_meta(2, 12), text_meta(2, 5)
    _, long = built(name, long_meta, *extra)
    _, short = built(name, short_meta, *extra)
    for layer in short.layers:
        weights = long.get_layer(layer.name).get_weights()
        if layer.name == "tokens" and len(weights) == 2:  # token and position embeddings
            weights[1] = weights[1][:5]
        layer.set_weights(weights)
    x_short = text_rows(short_meta, 16, seed=1)
    x_long = np.zeros((16, 14), "float32")
    x_long[:, :7] = x_short
    np.testing.assert_allclose(long.predict_on_batch(x_long), short.predict_on_batch(x_short), rtol=1e-4, atol=1e-5)


def test_a_text_without_tokens_gives_no_nan() -> None:
    meta = text_meta(2, 6)
    for name in MODELS:
        for pooling in (("model.pooling=max",) if name != "rnn" else ()) + ("",):
            _, model = built(name, meta, *([pooling] if pooling else []))
            x = np.zeros((2, 8), "float32")
            x[:, :2] = 1.0
            assert np.all(np.isfinite(model.predict_on_batch(x))), (name, pooling)


def test_attention_scores_leave_padding_out() -> None:
    meta = text_meta(1, 10)
    _, model = built("attention", meta, "model.layers=2")
    assert attention_layers(model) == ["attention_1", "attention_2"]
    x = text_rows(meta, 6, seed=2)
    tokens = (x[:, 1:] != 0)
    for layer in (None, "attention_1"):
        scores = attention_scores(model, x, layer)
        assert scores.shape == (6, 2, 10, 10)
        for e in range(6):
            kept = tokens[e]
            weights = scores[e][:, kept]  # the text's own queries
            np.testing.assert_allclose(weights[:, :, kept].sum(axis=-1), 1.0, rtol=1e-5)
            assert np.all(weights[:, :, ~kept] == 0.0)
    with pytest.raises(ValueError, match="no attention layer"):
        attention_scores(model, x, "attention_9")


def test_attention_scores_of_image_tokens() -> None:
    _, model = built("attention", image_meta((8, 8, 1)), "model.patch_size=[4,4]")
    scores = attention_scores(model, rows_for(image_meta(), 3))
    assert scores.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, rtol=1e-5)


def test_token_embedding_override() -> None:
    meta = text_meta(2, 8)
    _, model = built("attention", meta)
    layer = model.get_layer("tokens")
    x = text_rows(meta, 5, seed=3)
    normal = np.asarray(model(x))
    vectors = layer.token_vectors(x)
    assert tuple(vectors.shape) == (5, 8, 16)
    try:
        layer.override = vectors
        np.testing.assert_allclose(np.asarray(model(x)), normal, rtol=1e-5, atol=1e-6)
        layer.override = np.zeros((5, 8, 16), "float32")
        assert not np.allclose(np.asarray(model(x)), normal, atol=1e-4)
    finally:
        layer.override = None
    np.testing.assert_allclose(np.asarray(model(x)), normal, rtol=1e-5, atol=1e-6)


def test_l2_penalty_reaches_the_sequence_models() -> None:
    for name in MODELS:
        for meta in (text_meta(2), image_meta()):
            _, model = built(name, meta, "regularization=l2")
            assert len(model.losses) >= 2, name  # the layers' kernels and the output


def test_token_labels() -> None:
    meta = text_meta(1, 6)
    row = np.array([0.5, 3, 4, 1, 0, 0, 0], "float32")
    assert token_labels(meta.text, row, 6) == ["w1", "w2", "[UNK]"]
    image = np.zeros((8, 8, 1))
    assert token_labels(None, image, 8) == [f"row {i}" for i in range(1, 9)]
    assert token_labels(None, image, 4, [4, 4]) == ["patch (1,1)", "patch (1,2)", "patch (2,1)", "patch (2,2)"]


def bundle_for(meta: DataMeta, n: int = 6) -> DataBundle:
    x, y = rows_for(meta, n), np.arange(n) % max(2, meta.n_outputs)
    if meta.task == "binary":
        y = np.arange(n) % 2
    return DataBundle(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y, meta=meta)


@pytest.mark.parametrize("meta,extra", [(text_meta(2, 30, task="binary"), ()), (image_meta(), ()),
                                        (image_meta(), ("model.patch_size=[2,4]",))],
                         ids=["text", "image rows", "image patches"])
def test_write_attention_maps(tmp_path: Path, meta: DataMeta, extra: tuple) -> None:
    run, model = built("attention", meta, *extra)
    path = write_attention_maps(run, model, bundle_for(meta), tmp_path, examples=3)
    assert path == tmp_path / "attention.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other, plain = built("pooled_embedding", meta)
    assert write_attention_maps(other, plain, bundle_for(meta), tmp_path / "none") is None


def test_digits_as_rows_train_with_attention_through_the_cli(tmp_path: Path) -> None:
    out = dlrun(["train", "data=digits", "model=attention", "trainer.epochs=3", "debug=fast", "trainer.verbose=0",
                 f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert "no attention.png" not in out.stderr
