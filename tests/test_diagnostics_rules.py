"""The verdict rules on constructed numbers: no TensorFlow, no training."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import DiagnosisRules
from dlrun.diagnostics.rules import RULES, VERDICTS, RunFacts, diagnose, norm_ratio

RULES_DEFAULT = DiagnosisRules()
LAYERS = ["dense_1", "dense_2", "dense_3", "output"]


def stats_frame(epochs: int, grad: dict, activation: str = "relu", dead: float = float("nan"),
                saturated: float = float("nan"), update: float = 0.05, loss0: float = 2.3) -> pd.DataFrame:
    """One row per (epoch 0..epochs, layer); grad[layer] is the gradient norm at every epoch."""
    rows = []
    for epoch in range(epochs + 1):
        for layer in LAYERS:
            hidden = layer != "output"
            rows.append({"epoch": epoch, "layer": layer, "activation": activation if hidden else "softmax",
                         "units": 64 if hidden else 10, "grad_norm": grad[layer], "weight_norm": 5.0,
                         "update_ratio": float("nan") if epoch == 0 else update,
                         "dead_fraction": dead if hidden and activation == "relu" else float("nan"),
                         "saturated_fraction": saturated if hidden and activation in ("sigmoid", "tanh")
                         else float("nan"),
                         "loss": loss0})
    return pd.DataFrame(rows)


HEALTHY_GRAD = {"dense_1": 0.3, "dense_2": 0.4, "dense_3": 0.5, "output": 0.6}


def history_frame(loss, val_loss=None, val_accuracy=None) -> pd.DataFrame:
    n = len(loss)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1), "loss": loss})
    if val_loss is not None:
        frame["val_loss"] = val_loss
    if val_accuracy is not None:
        frame["val_accuracy"] = val_accuracy
    return frame


def facts(**kw) -> RunFacts:
    base = dict(task="multiclass", metric="accuracy", higher_is_better=True, chance=0.1, perfect=1.0,
                activation="relu", units=(64, 64, 64), learning_rate=0.01, train_rows=1000,
                regularization=("early_stopping",), probe_rows=256)
    base.update(kw)
    return RunFacts(**base)


def healthy_history(n: int = 20) -> pd.DataFrame:
    loss = list(np.linspace(2.0, 0.1, n))
    return history_frame(loss, val_loss=list(np.linspace(2.0, 0.2, n)), val_accuracy=list(np.linspace(0.5, 0.97, n)))


def test_rules_are_registered_in_order_of_severity():
    assert tuple(RULES) == VERDICTS


def test_a_healthy_run_is_ok():
    d = diagnose(stats_frame(20, HEALTHY_GRAD, dead=0.1), healthy_history(), facts(), RULES_DEFAULT)
    assert d.verdict == "ok" and d.findings == []


def test_nan_loss_is_diverged_with_the_epoch_and_a_lower_learning_rate():
    hist = history_frame([2.0, 13.2, float("nan")], val_loss=[2, 3, float("nan")], val_accuracy=[0.2, 0.1, 0.1])
    d = diagnose(stats_frame(2, HEALTHY_GRAD), hist, facts(learning_rate=5.0), RULES_DEFAULT)
    assert d.verdict == "diverged"
    assert "epoch 3" in d.findings[0].evidence and "13.2 at epoch 2" in d.findings[0].evidence
    assert d.findings[0].overrides[0] == ("optimizer.learning_rate=0.5",)
    assert "exploding_gradients" not in [f.problem for f in d.findings]  # the same problem, said once


def test_a_loss_jump_far_above_its_start_is_exploding():
    loss = [13.0] + [2.31] * 19
    hist = history_frame(loss, val_loss=[2.3] * 20, val_accuracy=[0.1] * 20)
    d = diagnose(stats_frame(20, HEALTHY_GRAD), hist, facts(learning_rate=5.0), RULES_DEFAULT)
    assert d.verdict == "exploding_gradients"
    assert "13 at epoch 1" in d.findings[0].evidence and "5.65 times" in d.findings[0].evidence
    assert d.findings[0].overrides[0] == ("optimizer.clipnorm=0.1",)  # steps of at most 5 x 0.1
    assert "underfitting" in [f.problem for f in d.findings]  # it also learned nothing
    calm = diagnose(stats_frame(20, HEALTHY_GRAD), hist, facts(learning_rate=0.1), RULES_DEFAULT)
    assert calm.findings[0].overrides[0] == ("optimizer.clipnorm=1",)


def test_exploding_ratio_and_nan_gradients():
    grad = dict(HEALTHY_GRAD, dense_1=100.0, output=1.0)  # ratio 100 > 70
    d = diagnose(stats_frame(10, grad), healthy_history(10), facts(), RULES_DEFAULT)
    assert d.verdict == "exploding_gradients" and "100 times" in d.findings[0].evidence
    nan_grad = dict(HEALTHY_GRAD, dense_2=float("nan"))
    d = diagnose(stats_frame(10, nan_grad), healthy_history(10), facts(clipnorm=1.0), RULES_DEFAULT)
    assert d.verdict == "exploding_gradients" and "dense_2 was nan" in d.findings[0].evidence
    assert d.findings[0].overrides == (("optimizer.learning_rate=0.001",),)  # clipping already on


def test_vanishing_uses_the_first_to_last_layer_ratio_with_the_published_threshold():
    grad = {"dense_1": 1e-7, "dense_2": 1e-5, "dense_3": 1e-3, "output": 0.5}  # ratio 2e-7
    hist = history_frame([2.3] * 30, val_loss=[2.3] * 30, val_accuracy=[0.1] * 30)
    d = diagnose(stats_frame(30, grad, activation="sigmoid"), hist,
                 facts(activation="sigmoid", units=(64,) * 10), RULES_DEFAULT)
    assert d.verdict == "vanishing_gradients"
    f = d.findings[0]
    assert "dense_1" in f.evidence and "2e-07 times" in f.evidence and "epochs 9-30" in f.evidence
    assert f.overrides[0] == ("model.activation=relu", "model.initializer=he_normal")
    assert f.overrides[1] == ("regularization=[early_stopping,batchnorm]",)
    assert f.overrides[2] == ("model=residual_mlp", "model.units=[64,64,64,64,64]", "model.activation=sigmoid")
    # just above the threshold: not vanishing
    ok = dict(grad, dense_1=0.5 * 2e-3)
    assert diagnose(stats_frame(30, ok), healthy_history(30), facts(), RULES_DEFAULT).verdict == "ok"


def test_vanishing_is_judged_from_start_fraction_of_the_epochs_on():
    stats = stats_frame(10, HEALTHY_GRAD)
    early = (stats["epoch"] < 3) & (stats["layer"] == "dense_1")
    stats.loc[early, "grad_norm"] = 1e-9  # tiny only in epochs 0-2, before 30% of 10 epochs
    assert diagnose(stats, healthy_history(10), facts(), RULES_DEFAULT).verdict == "ok"
    late = stats_frame(10, HEALTHY_GRAD)
    late.loc[(late["epoch"] >= 3) & (late["layer"] == "dense_1"), "grad_norm"] = 1e-9
    assert diagnose(late, healthy_history(10), facts(), RULES_DEFAULT).verdict == "vanishing_gradients"


def test_dead_relu_layers_name_the_layer_fraction_and_epoch():
    stats = stats_frame(10, HEALTHY_GRAD, dead=0.2)
    stats.loc[(stats["layer"] == "dense_2") & (stats["epoch"] >= 4), "dead_fraction"] = 0.92
    d = diagnose(stats, healthy_history(10), facts(), RULES_DEFAULT)
    assert d.verdict == "dead_units"
    assert "dense_2: 92% of its 64 units output 0 since epoch 4" in d.findings[0].evidence
    assert "256 rows" in d.findings[0].evidence
    assert d.findings[0].overrides[0] == ("model.activation=leaky_relu",)
    # recovered by the end: no finding
    stats.loc[(stats["layer"] == "dense_2") & (stats["epoch"] == 10), "dead_fraction"] = 0.1
    assert diagnose(stats, healthy_history(10), facts(), RULES_DEFAULT).verdict == "ok"


def test_a_pinned_sigmoid_output_is_not_a_saturated_layer():
    stats = stats_frame(10, HEALTHY_GRAD)
    stats.loc[stats["layer"] == "output", ["activation", "saturated_fraction"]] = ["sigmoid", 1.0]
    assert diagnose(stats, healthy_history(10), facts(task="binary"), RULES_DEFAULT).verdict == "ok"


def test_saturated_sigmoid_units():
    stats = stats_frame(10, HEALTHY_GRAD, activation="tanh", saturated=0.8)
    d = diagnose(stats, healthy_history(10), facts(activation="tanh"), RULES_DEFAULT)
    assert d.verdict == "saturated_units" and "pinned at a bound from the start" in d.findings[0].evidence
    assert d.findings[0].overrides[0] == ("model.activation=relu", "model.initializer=he_normal")


def test_unstable_loss_oscillates():
    loss = [2.0, 1.2, 1.6, 1.0, 1.5, 0.9, 1.4, 0.8, 1.3, 0.8]
    hist = history_frame(loss, val_loss=loss, val_accuracy=[0.6] * 10)
    d = diagnose(stats_frame(10, HEALTHY_GRAD), hist, facts(batch_size=8), RULES_DEFAULT)
    assert d.verdict == "unstable"
    assert "rose in 4 of 9 epochs" in d.findings[0].evidence
    assert ("trainer.batch_size=32",) in d.findings[0].overrides
    # rare but large jumps back far above the best loss so far (Adam at a too-high rate)
    jumpy = [1.1, 0.33, 0.35, 0.40, 0.23, 0.49, 0.98, 0.71, 0.27, 0.39, 1.14, 0.60, 0.32, 0.24, 0.18]
    hist = history_frame(jumpy, val_loss=jumpy, val_accuracy=[0.9] * 15)
    d = diagnose(stats_frame(15, HEALTHY_GRAD, loss0=2.47), hist, facts(), RULES_DEFAULT)
    assert d.verdict == "unstable" and "at least twice its lowest value so far" in d.findings[0].evidence
    assert "worst: 1.14 at epoch 11, after a low of 0.23" in d.findings[0].evidence
    # small rises (noise near convergence) are not instability
    calm = [2.0, 1.0, 0.5, 0.3, 0.31, 0.2, 0.21, 0.15, 0.16, 0.1]
    hist = history_frame(calm, val_loss=calm, val_accuracy=[0.9] * 10)
    assert diagnose(stats_frame(10, HEALTHY_GRAD), hist, facts(), RULES_DEFAULT).verdict == "ok"


def test_underfitting_when_the_metric_hardly_leaves_chance_and_steps_are_tiny():
    hist = history_frame(list(np.linspace(2.3, 2.2, 30)), val_loss=[2.3] * 30,
                         val_accuracy=list(np.linspace(0.10, 0.13, 30)))
    d = diagnose(stats_frame(30, HEALTHY_GRAD, update=1e-5), hist, facts(learning_rate=1e-4), RULES_DEFAULT)
    assert d.verdict == "underfitting"
    f = d.findings[0]
    assert "0.13" in f.evidence and "0.1 for always answering the most common class" in f.evidence
    assert "closed 3% of the gap" in f.evidence and "still rising" in f.evidence and "too small" in f.evidence
    assert f.overrides[0] == ("optimizer.learning_rate=0.001",)
    # a regression run: MAE against the mean's MAE (lower is better)
    hist = history_frame([1.0] * 10, val_loss=[1.0] * 10)
    hist["val_mae"] = [60.0] * 10
    d = diagnose(stats_frame(10, HEALTHY_GRAD), hist,
                 facts(task="regression", metric="mae", higher_is_better=False, chance=62.0, perfect=0.0),
                 RULES_DEFAULT)
    assert d.verdict == "underfitting" and "always answering the training mean" in d.findings[0].evidence


def test_overfitting_needs_a_rising_validation_loss_a_falling_training_loss_and_no_restore():
    n = 300
    train = list(np.geomspace(1.0, 1e-4, n))
    val = [0.27 + 0.001 * abs(e - 8) if e < 8 else 0.27 + (0.18 * (e - 8) / (n - 8)) for e in range(1, n + 1)]
    hist = history_frame(train, val_loss=val, val_accuracy=[0.85] * n)
    d = diagnose(stats_frame(n, HEALTHY_GRAD), hist, facts(regularization=(), train_rows=150), RULES_DEFAULT)
    assert d.verdict == "overfitting"
    f = d.findings[0]
    assert "from 0.27 at epoch 8 to 0.45 at epoch 300" in f.evidence and "150 training rows" in f.evidence
    assert f.overrides[0] == ("regularization=[dropout,l2,early_stopping]",)
    # the run ended on its best epoch's weights: the model is not the overfitted one
    restored = diagnose(stats_frame(n, HEALTHY_GRAD), hist, facts(regularization=(), restored_best=True),
                        RULES_DEFAULT)
    assert restored.verdict == "ok"


def test_thresholds_are_configurable():
    grad = dict(HEALTHY_GRAD, dense_1=0.006)  # ratio 0.01
    assert diagnose(stats_frame(10, grad), healthy_history(10), facts(), RULES_DEFAULT).verdict == "ok"
    strict = DiagnosisRules(vanishing_ratio=0.05)
    assert diagnose(stats_frame(10, grad), healthy_history(10), facts(), strict).verdict == "vanishing_gradients"


def test_too_few_epochs_or_no_statistics_judge_nothing_they_cannot():
    hist = history_frame([2.0, 2.5], val_loss=[2.0, 2.6], val_accuracy=[0.1, 0.1])
    d = diagnose(pd.DataFrame(), hist, facts(), RULES_DEFAULT)
    assert d.verdict == "ok"
    assert norm_ratio(pd.DataFrame(columns=["epoch", "layer", "grad_norm"])).empty


@pytest.mark.parametrize("problem", VERDICTS)
def test_every_finding_has_evidence_a_suggestion_and_overrides(problem):
    # each rule, made to fire on its own constructed case, says what to change
    cases = {
        "diverged": (stats_frame(2, HEALTHY_GRAD), history_frame([2.0, float("inf")]), facts()),
        "exploding_gradients": (stats_frame(5, HEALTHY_GRAD), history_frame([9.0, 2.2, 2.2, 2.2, 2.2]), facts()),
        "vanishing_gradients": (stats_frame(5, dict(HEALTHY_GRAD, dense_1=1e-6)), healthy_history(5), facts()),
        "dead_units": (stats_frame(5, HEALTHY_GRAD, dead=1.0), healthy_history(5), facts()),
        "saturated_units": (stats_frame(5, HEALTHY_GRAD, activation="sigmoid", saturated=1.0), healthy_history(5),
                            facts(activation="sigmoid")),
        "unstable": (stats_frame(6, HEALTHY_GRAD), history_frame([2.0, 1.0, 1.8, 0.9, 1.7, 0.8]), facts()),
        "underfitting": (stats_frame(5, HEALTHY_GRAD), history_frame([2.3] * 5, [2.3] * 5, [0.1] * 5), facts()),
        "overfitting": (stats_frame(12, HEALTHY_GRAD),
                        history_frame(list(np.linspace(1, 0.01, 12)), [0.5, 0.4, 0.3] + [0.3 + 0.05 * i for i in range(1, 10)],
                                      [0.9] * 12), facts()),
    }
    stats, hist, f = cases[problem]
    found = [x for x in diagnose(stats, hist, f, RULES_DEFAULT).findings if x.problem == problem]
    assert found, problem
    finding = found[0]
    assert finding.evidence and finding.suggestion and finding.overrides
    assert all("=" in o for alternative in finding.overrides for o in alternative)
    assert set(finding.as_dict()) == {"problem", "evidence", "suggestion", "overrides"}
