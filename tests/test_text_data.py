"""A column of free text (data.text) read as token ids, and the generated reviews
(data=reviews): tokenizing as Keras's TextVectorization does, the vocabulary fitted on
the training rows only, the row layout [other features..., token ids...], empty texts,
bad input, and the saved preprocessing applied to new rows. Data level only: no model
is trained here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import DataConfig
from dlrun.data import build_data
from dlrun.data.generated_text import reviews_table
from dlrun.data.prepare import prepare
from dlrun.data.text import TextEncoder, standardize, tokenize
from dlrun.errors import DataError
from tests.helpers import dlrun

MESSY = ["The plot was NOT good!!!", "  a   really\tgreat film... ", "Never boring, (honestly)",
         "zebra-like acting; don't", "ÉCOLE Straße \xa0 café", "", "[UNK] tokens and 42 numbers",
         "the the the end"]


# ------------------------------------------------------------------ helpers
def words_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A table with a number, a category, a text column and a yes/no label."""
    rng = np.random.default_rng(seed)
    good = ["good", "great", "fine"]
    bad = ["bad", "awful", "dull"]
    label = np.array(["yes", "no"] * (n // 2))
    text = [" ".join(["the", "film", "was", *rng.choice(good if lab == "yes" else bad, 1 + i % 4)])
            for i, lab in enumerate(label)]
    return pd.DataFrame({"age": rng.normal(40, 10, n), "city": rng.choice(["Oslo", "Paris", "Rome"], n),
                         "review": text, "label": label})


def run_prepare(frame: pd.DataFrame, target: str = "label", keep_source: bool = False, **kw):
    """prepare() on a copy of `frame`, bypassing build_data's cache."""
    cfg = DataConfig(name="csv", path="unused.csv", target=target, text=kw.pop("text", "review"), **kw)
    return prepare(frame.copy(), target, "auto", cfg, keep_source=keep_source)


def csv_file(tmp_path: Path, frame: pd.DataFrame, name: str = "reviews.csv") -> Path:
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path / name


# ------------------------------------------------------------------ tokens
def test_standardize_and_tokenize_known_strings() -> None:
    assert standardize("The Plot, was NOT good!!!") == "the plot was not good"
    assert tokenize("  a   really\tgreat\nfilm... ") == ["a", "really", "great", "film"]
    assert tokenize("don't stop-motion [UNK]") == ["dont", "stopmotion", "unk"]
    assert tokenize("ÉCOLE Straße") == ["École", "straße"]  # tf.strings.lower lowercases ASCII only
    assert tokenize("a\xa0b") == ["a\xa0b"]  # ... and tf.strings.split splits on ASCII whitespace only
    for empty in (None, float("nan"), "", "  ", "!?"):
        assert tokenize(empty) == []


def test_ids_match_keras_text_vectorization() -> None:
    import keras

    encoder = TextEncoder(max_tokens=12, sequence_length=6).fit(pd.Series(MESSY[:5], name="review"))
    assert encoder.vocabulary_[:2] == ["", "[UNK]"] and len(encoder.vocabulary_) == 12
    layer = keras.layers.TextVectorization(vocabulary=encoder.vocabulary_[2:], output_sequence_length=6)
    theirs = np.asarray(layer(np.asarray(MESSY, dtype=object)))
    np.testing.assert_array_equal(encoder.transform(pd.Series(MESSY)), theirs)
    assert layer.get_vocabulary() == encoder.vocabulary_


def test_vocabulary_is_ordered_by_frequency_then_alphabet_and_capped() -> None:
    texts = pd.Series(["b a c", "c b", "c", "d e f", "z"])
    full = TextEncoder(max_tokens=100).fit(texts)
    assert full.vocabulary_ == ["", "[UNK]", "c", "b", "a", "d", "e", "f", "z"]
    capped = TextEncoder(max_tokens=5, sequence_length=3).fit(texts)
    assert capped.vocabulary_ == ["", "[UNK]", "c", "b", "a"]
    np.testing.assert_array_equal(capped.transform(pd.Series(["a z c b", None])), [[4, 1, 2], [0, 0, 0]])
    assert capped.transform(pd.Series(["x"])).dtype == np.float32


def test_max_tokens_caps_the_prepared_vocabulary() -> None:
    b = run_prepare(words_frame(), max_tokens=5)
    assert b.meta.text.vocabulary_size == 5 and b.meta.report["text"]["vocabulary_size"] == 5
    ids = b.x_train[:, b.meta.text.offset:]
    assert set(np.unique(ids)) <= {0, 1, 2, 3, 4} and (ids == 4).any() and (ids == 1).any()


def test_vocabulary_is_fitted_on_the_training_split_only() -> None:
    frame = words_frame(80)
    first = run_prepare(frame, keep_source=True)  # the split depends on the rows and labels, not the texts
    test_rows = first.source.index["test"]
    frame.loc[frame.index[test_rows], "review"] = "zebra " + frame["review"].iloc[test_rows]
    b = run_prepare(frame, keep_source=True)
    np.testing.assert_array_equal(b.source.index["test"], test_rows)
    layout = b.meta.text
    assert "zebra" not in layout.vocabulary
    assert (b.x_test[:, layout.offset] == 1).all()  # the first word of every test text: out of vocabulary
    assert layout.tokens(b.x_test[0])[0] == "[UNK]"
    assert b.meta.report["text"]["test_oov_share"] > 0.1
    assert b.meta.report["fingerprint"] != first.meta.report["fingerprint"]  # the text is part of the data


# ------------------------------------------------------------------ layout
def test_layout_other_features_first_then_unscaled_token_ids() -> None:
    b = run_prepare(words_frame(), sequence_length=5)
    layout = b.meta.text
    assert layout.column == "review" and layout.offset == 4 and layout.length == 5
    assert b.meta.input_shape == (9,) and b.x_train.shape[1] == 9 and b.x_train.dtype == np.float32
    assert b.meta.feature_names == ["age", "city_Oslo", "city_Paris", "city_Rome",
                                    "review[0]", "review[1]", "review[2]", "review[3]", "review[4]"]
    assert abs(b.x_train[:, 0].mean()) < 1e-5  # the number is scaled ...
    ids = b.x_train[:, 4:]
    np.testing.assert_array_equal(ids, np.round(ids))  # ... the ids are not
    assert ids.max() >= 3 and ids.min() == 0
    assert layout.tokens(b.x_train[0])[:3] == ["the", "film", "was"]
    assert b.meta.report["text_columns"] == ["city"]  # the text column is not a category
    assert b.preprocessing.text_column == "review" and b.preprocessing.numeric == ["age"]


def test_text_alone_gives_rows_of_token_ids() -> None:
    b = run_prepare(words_frame(), features=["review"], sequence_length=4)
    assert b.meta.text.offset == 0 and b.meta.input_shape == (4,)
    assert b.meta.feature_names == [f"review[{i}]" for i in range(4)]
    tokens_first = run_prepare(words_frame(), features=["review", "age"], sequence_length=4)
    assert tokens_first.meta.feature_names[0] == "age" and tokens_first.meta.text.offset == 1
    added = run_prepare(words_frame(), features=["age"], sequence_length=4)  # data.text joins data.features
    assert added.meta.feature_names == ["age", *[f"review[{i}]" for i in range(4)]]


def test_a_text_column_with_many_values_is_not_dropped_as_high_cardinality() -> None:
    frame = words_frame(100)
    frame["review"] = [f"{t} number{i}" for i, t in enumerate(frame["review"])]
    b = run_prepare(frame)
    assert b.meta.report["dropped_columns"] == [] and b.meta.text is not None
    assert not any("review" in note and "dropped" in note for note in b.meta.notes)


def test_sequence_length_auto_is_the_95th_percentile_of_training_texts() -> None:
    frame = words_frame(100)
    frame["review"] = [" ".join(["word"] * (1 + i % 25)) for i in range(100)]
    b = run_prepare(frame, keep_source=True)
    counts = np.array([len(tokenize(t)) for t in frame["review"].iloc[b.source.index["train"]]])
    expected = int(np.ceil(np.percentile(counts, 95)))
    assert b.meta.text.length == expected == b.meta.report["text"]["sequence_length"]
    assert b.meta.report["text"]["sequence_length_auto"] is True
    longer = sum(1 + i % 25 > expected for i in range(100))
    assert b.meta.report["text"]["cut_rows"] == longer > 0
    assert any(f"{longer} of 100 texts are longer than data.sequence_length={expected}" in n for n in b.meta.notes)
    explicit = run_prepare(frame, sequence_length=3)
    assert explicit.meta.text.length == 3 and explicit.meta.report["text"]["sequence_length_auto"] is False
    assert explicit.meta.report["text"]["cut_rows"] == sum(1 + i % 25 > 3 for i in range(100))


def test_sequence_length_auto_is_capped_at_512_with_a_note() -> None:
    frame = words_frame(20)
    frame["review"] = " ".join(f"w{i}" for i in range(600))
    b = run_prepare(frame)
    assert b.meta.text.length == 512
    assert any("capped at 512" in note for note in b.meta.notes)
    assert run_prepare(frame, sequence_length=600).meta.text.length == 600  # a chosen length is kept


@pytest.mark.parametrize("missing", ["impute", "drop", "error"])
def test_empty_texts_become_padding_and_are_counted_never_dropped(missing: str) -> None:
    frame = words_frame(60)
    frame.loc[[0, 1, 2, 3], "review"] = [np.nan, "", "   ", "?!"]
    b = run_prepare(frame, missing=missing, keep_source=True)
    assert sum(b.meta.rows.values()) == 60 and b.meta.report["dropped_rows"] == 0
    assert b.meta.report["text"]["empty_rows"] == 4
    assert b.meta.report["filled_values"] == 0
    assert any("4 row(s) have no text" in note for note in b.meta.notes)
    x_all = np.concatenate([b.x_train, b.x_val, b.x_test])
    index = np.concatenate([b.source.index[s] for s in ("train", "val", "test")])
    assert (x_all[np.isin(index, [0, 1, 2, 3]), b.meta.text.offset:] == 0).all()
    assert b.source.frame.columns[-1] == "review"  # kept as read, for explanations


def test_resampling_keeps_whole_token_ids() -> None:
    frame = words_frame(60)
    frame.loc[frame.index[:20], "label"] = "yes"  # 40 yes, 20 no
    b = run_prepare(frame, resample="oversample", sequence_length=4)
    counts = np.bincount(b.y_train)
    assert counts[0] == counts[1]
    ids = b.x_train[:, b.meta.text.offset:]
    np.testing.assert_array_equal(ids, np.round(ids))


# ------------------------------------------------------------------ bad input
def test_unknown_text_column_suggests_the_closest(tmp_path: Path) -> None:
    path = csv_file(tmp_path, words_frame())
    with pytest.raises(DataError, match=r"^data\.text='reveiw': no such column in .*did you mean 'review'\?\)$"):
        build_data(DataConfig(name="csv", path=str(path), target="label", text="reveiw"))


@pytest.mark.parametrize("values, message", [
    (lambda n: np.arange(n) % 7, r"holds numbers only \(0, 1, 2\)"),
    (lambda n: [str(i % 5) + ".5" for i in range(n)], r"holds numbers only"),
    (lambda n: [np.nan] * n, r"holds no words in any row"),
    (lambda n: ["", "!!", None] * (n // 3), r"holds no words in any row"),
])
def test_bad_text_columns_are_refused_in_one_line(tmp_path: Path, values, message) -> None:
    frame = words_frame(60).assign(review=values(60))
    path = csv_file(tmp_path, frame)
    with pytest.raises(DataError, match=r"^data\.text='review': .*" + message) as err:
        build_data(DataConfig(name="csv", path=str(path), target="label", text="review"))
    assert "\n" not in str(err.value)


def test_text_column_equal_to_the_target_is_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, words_frame())
    with pytest.raises(DataError, match=r"^data\.text='label': is the target column"):
        build_data(DataConfig(name="csv", path=str(path), target="label", text="label"))


@pytest.mark.parametrize("extra, message", [
    (["data.text=reveiw"], "data.text='reveiw': no such column in reviews.csv (did you mean 'review'?)"),
    (["data.text=age"], "data.text='age': the column holds numbers only"),
])
def test_cli_refuses_bad_text_columns_with_one_line_and_writes_nothing(tmp_path: Path, extra, message) -> None:
    csv_file(tmp_path, words_frame())
    before = sorted(p.name for p in tmp_path.iterdir())
    out = dlrun(["check", "data=csv", "data.path=reviews.csv", "data.target=label", *extra,
                 "model=pooled_embedding"], tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ------------------------------------------------------------------ data=reviews
def test_reviews_are_generated_deterministically_with_order_deciding_the_label() -> None:
    frame = reviews_table()
    assert frame.shape == (4000, 2) and list(frame.columns) == ["review", "sentiment"]
    assert frame.equals(reviews_table())
    shares = frame["sentiment"].value_counts(normalize=True)
    assert set(shares.index) == {"positive", "negative"} and shares.min() > 0.45
    words = frame["review"].map(lambda t: " ".join(tokenize(t)))
    assert (frame.groupby(words)["sentiment"].nunique() == 1).all()  # the text decides: labels are exact
    bags = frame["review"].map(lambda t: " ".join(sorted(tokenize(t))))
    both = frame.groupby(bags)["sentiment"].nunique()
    assert (both == 2).sum() > 200  # the same bag of words with both labels: order decides
    contrast = frame["review"].str.contains(" but ")
    assert 0.5 < contrast.mean() < 0.7
    mirrored = frame[bags.isin(both[both == 2].index)]
    assert mirrored["review"].str.contains(" but ").all()


def test_data_reviews_prepares_rows_of_token_ids() -> None:
    b = build_data(DataConfig(name="reviews", text="review"))
    assert b.meta.task == "binary" and b.meta.classes == ["negative", "positive"]
    assert sum(b.meta.rows.values()) == 4000
    layout = b.meta.text
    assert layout.offset == 0 and b.meta.input_shape == (layout.length,)
    report = b.meta.report["text"]
    assert report["cut_rows"] == 0 and report["empty_rows"] == 0  # the automatic length keeps every word
    assert 40 < layout.vocabulary_size < 100 and layout.vocabulary[:2] == ["", "[UNK]"]


# ------------------------------------------------------------------ saved preprocessing and predict
def test_saved_preprocessing_reads_new_texts(tmp_path: Path) -> None:
    from dlrun.data import saved
    from dlrun.predict import feature_frame, transform

    frame = words_frame(60)
    path = csv_file(tmp_path, frame)
    cfg = DataConfig(name="csv", path=str(path), target="label", text="review", missing="drop", sequence_length=5)
    bundle = build_data(cfg, source=True)
    run = tmp_path / "run"
    run.mkdir()
    saved.save(run, cfg, bundle, threshold=None, output="probability")
    info = saved.load(run)
    assert info["text_column"] == "review" and info["sequence_length"] == 5
    assert "review" not in info["numeric"] and "review" not in info["text"]

    test_rows = bundle.source.rows("test")
    x = transform(feature_frame(test_rows.reset_index(drop=True), info, "same.csv", allow_unseen=False), info, "same.csv")
    np.testing.assert_array_equal(x, bundle.x_test)

    new = pd.DataFrame({"city": ["Oslo", "Rome"], "age": [30.0, 50.0], "review": ["The film was GREAT, zebra!", None]})
    x_new = transform(feature_frame(new, info, "new.csv", allow_unseen=False), info, "new.csv")
    layout = bundle.meta.text
    assert x_new.shape == (2, layout.offset + 5)
    assert layout.tokens(x_new[0]) == ["the", "film", "was", "great", "[UNK]"]
    assert (x_new[1, layout.offset:] == 0).all()  # a missing text: an empty sequence, even with missing=drop
