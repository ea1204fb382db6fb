"""Text and attention end to end (issue #14): a text column trains with model=attention,
is predicted on new rows and explained (integrated gradients token by token, attention
beside them); digits read as rows are explained the same way; `dlrun tune` searches over
model.heads and model.layers; the methods that do not fit a sequence model are refused."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dlrun.cli import main
from tests.helpers import dlrun, make_run

SMALL_ATTENTION = ["model=attention", "model.dim=16", "model.heads=2", "model.ff_units=16", "trainer.verbose=0"]


def _train(tmp_path: Path, *overrides: str, folder: str = "run") -> Path:
    assert main(["train", *SMALL_ATTENTION, *overrides, f"hydra.run.dir={tmp_path / folder}"]) == 0
    return tmp_path / folder


def test_a_text_run_trains_predicts_and_explains_token_by_token(tmp_path: Path) -> None:
    run = _train(tmp_path, "data=reviews", "data.max_rows=400", "model.layers=1", "trainer.epochs=3")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["data"]["classes"] == ["negative", "positive"]
    assert (run / "attention.png").stat().st_size > 0

    new = tmp_path / "new.csv"
    pd.DataFrame({"review": ["the plot was not good", None, "a brilliant zorblax film"]}).to_csv(new, index=False)
    out = dlrun(["predict", str(run), str(new)], tmp_path)
    assert out.returncode == 0, out.stderr
    predicted = pd.read_csv(run / "predictions" / "new.csv")
    assert len(predicted) == 3 and set(predicted["predicted_sentiment"]) <= {"negative", "positive"}

    assert main(["explain", str(run), "explain.rows=[0,1]"]) == 0
    explained = run / "explain"
    summary = (explained / "summary.md").read_text()
    for name in ("permutation", "integrated gradients", "attention"):
        assert f"## {name}" in summary, summary
    ig = pd.read_csv(explained / "integrated_gradients.csv")
    assert (ig["completeness_error"] < 0.01).all()  # the attributions add up to f(text) - f(no words)
    tokens = pd.read_csv(explained / "integrated_gradients_tokens.csv")
    assert set(tokens["test_row"]) == {0, 1} and tokens["token"].str.len().gt(0).all()
    sums = tokens.groupby("test_row")["attribution"].sum()
    assert sums.to_numpy() == pytest.approx(ig.set_index("test_row")["attribution_sum"].loc[sums.index].to_numpy())
    attention = pd.read_csv(explained / "attention.csv")
    assert attention.groupby("test_row")["attention_rollout"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    assert (attention[["test_row", "position", "token"]].to_numpy() ==
            tokens[["test_row", "position", "token"]].to_numpy()).all()  # the same tokens, side by side
    assert "Spearman rank correlation" in summary
    for name in ("attention.png", "attention_vs_gradients.png", "integrated_gradients.png",
                 "permutation_importance.png"):
        assert (explained / name).stat().st_size > 0, name


def test_digits_read_as_rows_are_explained_by_attention_and_pixels(tmp_path: Path) -> None:
    run = _train(tmp_path, "data=digits", "model.layers=1", "trainer.epochs=2")
    assert main(["explain", str(run), "explain.rows=[0,1]", "explain.smooth_samples=2"]) == 0
    explained = run / "explain"
    attention = pd.read_csv(explained / "attention.csv")
    assert list(attention["token"][:8]) == [f"row {i}" for i in range(1, 9)]
    assert attention.groupby("test_row")["attention_rollout"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    for name in ("saliency.png", "integrated_gradients.png", "attention.png", "attention_vs_gradients.png"):
        assert (explained / name).stat().st_size > 0, name
    assert not (explained / "grad_cam.png").exists()  # no convolutional layer: left out of auto


@pytest.mark.parametrize("words, fits", [
    (["data=digits", "model=attention"], ["saliency", "integrated_gradients", "attention"]),
    (["data=reviews", "model=attention"], ["permutation", "integrated_gradients", "attention"]),
    (["data=reviews", "model=rnn"], ["permutation", "integrated_gradients"]),
])
def test_auto_methods_fit_the_sequence_model(words: list, fits: list) -> None:
    from dlrun.config.schema import ExplainConfig
    from dlrun.explain.source import methods_for

    assert methods_for(ExplainConfig(), make_run(*words)) == fits


@pytest.mark.parametrize("words, method, message", [
    (["data=digits", "model=attention"], "grad_cam", r"model=attention has none. Use saliency"),
    (["data=reviews", "model=rnn"], "attention", r"model=rnn has no attention layer. Train with model=attention"),
    (["data=reviews", "model=attention"], "shap", r"this run's model \(model=attention\) reads a text column's "
                                                  r"tokens: use permutation, integrated_gradients, attention"),
])
def test_methods_that_do_not_fit_are_refused(words: list, method: str, message: str) -> None:
    from dlrun.config.schema import ExplainConfig
    from dlrun.errors import ConfigError
    from dlrun.explain.source import methods_for

    with pytest.raises(ConfigError, match=message):
        methods_for(ExplainConfig(methods=[method]), make_run(*words))


def test_tune_searches_over_heads_and_layers(tmp_path: Path) -> None:
    conf = tmp_path / "conf" / "space"
    conf.mkdir(parents=True)
    (conf / "heads_layers.yaml").write_text("model:\n  heads: {type: Choice, values: [1, 2]}\n"
                                         "  layers: {type: Choice, values: [1, 2]}\n")
    out = dlrun(["tune", "--config-dir", str(tmp_path / "conf"), "space=heads_layers", "search=grid",
                 "data=reviews", "data.max_rows=200", *SMALL_ATTENTION, "trainer.epochs=1", "search.refit=false",
                 "hydra.run.dir=search"], tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    trials = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert set(trials["status"]) == {"completed"}
    assert sorted(zip(trials["model.heads"], trials["model.layers"])) == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_check_shows_the_text_column_and_the_model(capsys) -> None:
    assert main(["check", "data=reviews", *SMALL_ATTENTION]) == 0
    shown = re.sub(r"[\s│┃]+", " ", capsys.readouterr().out)  # the table wraps long cells
    assert "review: 69 words in the vocabulary, 11 per text (95th percentile of the training texts)" in shown
    assert "attention_1" in shown and "tokens" in shown
