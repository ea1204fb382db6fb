"""Fused trials (search.fuse=K): several trials trained as branches of one Keras model.
Each trial keeps its own hyperparameters, callbacks and result; the oracle proposes what
it proposes unfused; a stopped branch is frozen; a NaN branch fails alone; trials that
cannot share a graph run apart; a killed fused search resumes with every trial once."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pytest

from dlrun.fusion import rules
from dlrun.search import fused
from tests.helpers import dlrun, kill_when, make_run, resume_completes
from tests.test_tune import run_tune

QUICK = ["search.refit=false", "trainer.verbose=0"]
OPTIMIZER_CLASSES = {"sgd": "SGD", "momentum": "SGD", "rmsprop": "RMSprop", "adadelta": "Adadelta", "adam": "Adam"}


# ----------------------------------------------------------------- pure rules
def test_slots_belong_to_their_tuner() -> None:
    assert fused.slot_id("tuner0", 3) == "tuner0~3"
    assert fused.slot_owner("tuner0~3") == "tuner0"
    assert fused.slot_owner("tuner1") == "tuner1"


def test_auto_fuse_fits_memory_and_the_trials_left() -> None:
    gib = 2.0 ** 30
    assert rules.auto_fuse(branch_bytes=1e6, free_bytes=8 * gib, trials_left=None) == rules.AUTO_MAX
    assert rules.auto_fuse(branch_bytes=1e6, free_bytes=8 * gib, trials_left=3) == 3
    assert rules.auto_fuse(branch_bytes=gib, free_bytes=8 * gib, trials_left=None) == 2  # a quarter of 8 GiB
    assert rules.auto_fuse(branch_bytes=10 * gib, free_bytes=8 * gib, trials_left=None) == 1  # never below 1


def test_group_key_separates_what_one_graph_cannot_share() -> None:
    base = make_run("data=digits")
    key = fused.group_key(base, {}, "sparse_categorical_crossentropy")
    assert key == fused.group_key(make_run("data=digits", "model.units=[7]", "optimizer=adam"), {},
                                  "sparse_categorical_crossentropy")  # width and optimizer: per branch
    assert key != fused.group_key(make_run("data=digits", "trainer.batch_size=16"), {},
                                  "sparse_categorical_crossentropy")
    assert key != fused.group_key(base, {}, "categorical_crossentropy")  # one-hot targets
    assert key != fused.group_key(base, {"tuner/epochs": 3, "tuner/initial_epoch": 1},
                                  "sparse_categorical_crossentropy")  # another Hyperband round
    transfer = make_run("data=digits", "model=transfer", "model.backbone=mobilenet_v3_small", "model.weights=none",
                        "model.fine_tune.layers=2")
    assert fused.group_key(transfer, {}, "sparse_categorical_crossentropy") is None  # a second phase recompiles


def test_fused_file_round_trip(tmp_path: Path) -> None:
    fused.write_fused(tmp_path, ["04", "05"])
    assert fused.read_fused(tmp_path) == "4 5"
    assert fused.read_fused(tmp_path / "nothing") is None


def test_branch_logs_reads_one_branch() -> None:
    from dlrun.fusion.branches import branch_logs

    logs = {"b0/loss": 1.0, "b1/loss": 2.0, "val_b1/loss": 3.0, "val_b1/accuracy": 0.5}
    assert branch_logs(logs, 1) == {"loss": 2.0, "val_loss": 3.0, "val_accuracy": 0.5}
    assert branch_logs(logs, 0) == {"loss": 1.0}


# ----------------------------------------------------------------- the fused model
def _tiny_models(n: int, learning_rates: List[float]) -> List[Any]:
    import keras

    keras.utils.set_random_seed(0)
    out = []
    for k in range(n):
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(inputs)))
        model.compile(optimizer=keras.optimizers.SGD(learning_rates[k]), loss="mse", metrics=["mae"])
        out.append(model)
    return out


def _regression_data() -> Any:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")).reshape(-1, 1)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_a_stopped_branch_is_frozen_while_the_others_train() -> None:
    import keras

    from dlrun.fusion.branches import BranchCallbacks, FusedBranches
    from dlrun.training import epoch_recorder

    class StopAfter(keras.callbacks.Callback):
        def __init__(self, epochs: int) -> None:
            super().__init__()
            self.epochs = epochs

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch + 1 >= self.epochs:
                self.model.stop_training = True

    class Snapshots(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.weights: List[List[List[np.ndarray]]] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.weights.append([[w.copy() for w in b.get_weights()] for b in self.model.branches])

    models = _tiny_models(2, [0.01, 0.01])
    recorders = [epoch_recorder(), epoch_recorder()]
    model = FusedBranches(models).prepare(steps_per_execution=4)
    snapshots = Snapshots()
    data = _regression_data()
    model.fit(data, validation_data=data, epochs=5, verbose=0, shuffle=False,
              callbacks=[BranchCallbacks([[recorders[0], StopAfter(2)], [recorders[1]]]), snapshots])
    assert len(recorders[0].rows) == 2 and len(recorders[1].rows) == 5  # each branch's own history
    frozen = [s[0] for s in snapshots.weights]
    training = [s[1] for s in snapshots.weights]
    for later in frozen[2:]:
        assert all(np.array_equal(a, b) for a, b in zip(frozen[1], later))  # no update after it stopped
    assert not all(np.array_equal(a, b) for a, b in zip(training[1], training[4]))  # the other trained on
    assert int(models[0].optimizer.iterations.numpy()) == 2 * 4
    assert int(models[1].optimizer.iterations.numpy()) == 5 * 4
    assert recorders[1].rows[-1]["val_loss"] < recorders[1].rows[0]["val_loss"]


def test_the_fit_ends_when_every_branch_stopped_and_a_nan_branch_fails() -> None:
    from dlrun.fusion.branches import BranchCallbacks, FusedBranches
    from dlrun.training import epoch_recorder

    models = _tiny_models(2, [0.01, 1e12])  # the second diverges
    recorders = [epoch_recorder(), epoch_recorder()]
    model = FusedBranches(models).prepare(steps_per_execution=4)
    data = _regression_data()
    history = model.fit(data, epochs=50, verbose=0, shuffle=False, callbacks=[BranchCallbacks([[recorders[0]], [recorders[1]]])])
    assert model.has_failed(1) and not model.has_failed(0)
    assert recorders[1].diverged_epoch is not None and recorders[0].diverged_epoch is None
    assert len(recorders[0].rows) == 50 and len(history.epoch) == 50
    assert np.isfinite(recorders[0].rows[-1]["loss"])


def test_matches_each_model_trained_alone() -> None:
    """Fusing changes nothing a model computes: the same initial weights and batches
    give the same weights as the model's own fit."""
    import keras

    from dlrun.fusion.branches import BranchCallbacks, FusedBranches

    data = _regression_data()
    alone = _tiny_models(2, [0.01, 0.05])
    start = [m.get_weights() for m in alone]
    for m in alone:
        m.fit(data, epochs=3, verbose=0, shuffle=False)
    together = _tiny_models(2, [0.01, 0.05])
    for m, w in zip(together, start):
        m.set_weights(w)
    FusedBranches(together).prepare(1).fit(data, epochs=3, verbose=0, shuffle=False, callbacks=[BranchCallbacks([[], []])])
    for a, b in zip(alone, together):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    keras.backend.clear_session()


# ----------------------------------------------------------------- searches
def _captured_groups(monkeypatch) -> List[List[Dict[str, Any]]]:
    """Each fused fit's members as built: the trial's values and its model."""
    groups: List[List[Dict[str, Any]]] = []
    original = fused.fit_fused

    def spy(tuner: Any, group: List[Any]) -> None:
        groups.append([{"trial": m.trial.trial_id, "values": dict(m.trial.hyperparameters.values),
                        "model": m.model} for m in group])
        original(tuner, group)

    monkeypatch.setattr(fused, "fit_fused", spy)
    return groups


def test_each_branch_is_built_with_the_values_its_trial_was_given(tmp_path: Path, monkeypatch) -> None:
    import keras

    groups = _captured_groups(monkeypatch)
    result = run_tune(tmp_path, "space=default", "search.max_trials=4", "search.fuse=4", "search.seed=3", *QUICK)
    assert result.status == "completed" and len(groups) == 1 and len(groups[0]) == 4
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert set(trials["status"]) == {"completed"}
    for member in groups[0]:
        values, model = member["values"], member["model"]
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert dense[0].units == values["model.units"]
        assert type(model.optimizer).__name__ == OPTIMIZER_CLASSES[values["optimizer"]]
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(values["optimizer.learning_rate"],
                                                                             rel=1e-5)
        if values["optimizer"] == "momentum":
            assert model.optimizer.momentum == pytest.approx(values["optimizer.momentum"])
        rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        assert rates == [] if values["regularization.dropout.rate"] == 0 else \
            rates and all(r == pytest.approx(values["regularization.dropout.rate"]) for r in rates)
        row = trials[trials["trial"] == int(member["trial"])].iloc[0]
        others = {int(m["trial"]) for m in groups[0]} - {int(member["trial"])}
        assert {int(t) for t in str(row["fused_with"]).split()} == others
        assert row["params"] == model.count_params()


@pytest.mark.parametrize("algorithm,extra", [
    ("random", ["space=units_lr", "search.max_trials=5"]),
    ("grid", ["space=units_lr", "space.model.units.min=32", "space.model.units.max=96",
              "~space.optimizer.learning_rate", "+space.optimizer.learning_rate={type:Choice,values:[0.001,0.01]}"]),
])
def test_fused_and_unfused_searches_propose_the_same_trials(tmp_path: Path, algorithm: str, extra: list) -> None:
    keys = ["model.units", "optimizer.learning_rate"]
    tables = {}
    for fuse in (1, 3):
        result = run_tune(tmp_path / str(fuse), f"search={algorithm}", *extra, f"search.fuse={fuse}", *QUICK)
        assert result.status == "completed"
        tables[fuse] = result.trials.sort_values("trial")
    assert tables[1][keys].values.tolist() == tables[3][keys].values.tolist()
    assert set(tables[3]["status"]) == {"completed"} and tables[3]["fused_with"].notna().any()
    assert "fused_with" not in tables[1]  # an unfused search's table is unchanged


def test_a_nan_trial_fails_alone_in_its_group(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "search=grid", "optimizer=sgd", "regularization=none", "space=units_lr",
                      "~space.model.units", "+space.model.units={type:Fixed,value:16}",
                      "~space.optimizer.learning_rate",
                      "+space.optimizer.learning_rate={type:Choice,values:[0.01,1.0e+12]}", "search.fuse=2", *QUICK)
    trials = result.trials.set_index("optimizer.learning_rate")
    assert trials.loc[1e12, "status"] == "failed" and "NaN" in trials.loc[1e12, "failure_reason"]
    assert trials.loc[0.01, "status"] == "completed" and np.isfinite(trials.loc[0.01, "objective"])
    assert str(trials.loc[0.01, "fused_with"]) == str(int(trials.loc[1e12, "trial"]))


def test_trials_that_cannot_share_a_graph_run_apart(tmp_path: Path) -> None:
    space = tmp_path / "conf" / "space"
    space.mkdir(parents=True)
    (space / "batches.yaml").write_text("trainer:\n  batch_size: {type: Choice, values: [16, 32]}\n"
                                        "model:\n  units: {type: Choice, values: [8, 16, 24]}\n")
    from dlrun.config import compose, normalize_overrides
    from dlrun.search.config import validate_tune
    from dlrun.search.runner import tune

    ov = normalize_overrides(["debug=fast", "search=grid", "space=batches", "search.fuse=6", *QUICK], "tune")
    result = tune(validate_tune(compose("tune", ov, [str(tmp_path / "conf")]), ov, [str(tmp_path / "conf")]),
                  tmp_path / "run")
    trials = result.trials
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    for _, row in trials.iterrows():  # fused with the trials of its own batch size only
        others = trials[(trials["trainer.batch_size"] == row["trainer.batch_size"]) & (trials["trial"] != row["trial"])]
        assert {int(t) for t in str(row["fused_with"]).split()} == set(others["trial"])


@pytest.mark.parametrize("algorithm,extra", [
    ("bayesian", ["search.max_trials=4", "search.num_initial_points=2"]),
    ("hyperband", ["search.max_trials=null", "search.max_epochs=4", "search.factor=2"]),
])
def test_bayesian_and_hyperband_fuse(tmp_path: Path, algorithm: str, extra: list) -> None:
    result = run_tune(tmp_path, f"search={algorithm}", "space=units_lr", *extra, "search.fuse=4", *QUICK)
    trials = result.trials
    assert result.status == "completed" and set(trials["status"]) == {"completed"}
    assert trials["fused_with"].notna().any()
    if algorithm == "hyperband":  # later rounds continue earlier trials' weights, each in a group of its budget
        for _, row in trials[trials["fused_with"].notna()].iterrows():
            mates = trials[trials["trial"].isin([int(t) for t in str(row["fused_with"]).split()])]
            assert (mates["epochs_budget"] == row["epochs_budget"]).all()
        assert trials["epochs_budget"].nunique() > 1


def test_fuse_auto_runs_and_bad_values_are_refused(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "space=units_lr", "search.max_trials=3", "search.fuse=auto", *QUICK)
    assert set(result.trials["status"]) == {"completed"} and result.trials["fused_with"].notna().all()
    for value in ("0", "abc", "-2"):
        out = dlrun(["tune", f"search.fuse={value}", "debug=fast"], tmp_path)
        assert out.returncode == 2 and "search.fuse" in out.stderr and "Traceback" not in out.stderr


def test_a_search_killed_mid_group_resumes_with_every_trial_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "search"
    args = ["tune", "space=units_lr", "search.max_trials=4", "search.fuse=2", "search.refit=false", "debug=fast",
            "trainer.epochs=60", "regularization=none", "trainer.verbose=0", f"hydra.run.dir={run_dir}"]
    kill_when(args, tmp_path, run_dir, lambda table: (table["status"] == "completed").sum() >= 2)  # group 2 trains
    oracle = json.loads((run_dir / "tuner" / "search" / "oracle.json").read_text())
    assert len(oracle["ongoing_trials"]) == 2  # the second group was running
    before = pd.read_csv(run_dir / "trials.csv")
    assert (before["status"] == "completed").sum() == 2
    resume_completes(args, tmp_path, run_dir, before, trials=4)
    after = pd.read_csv(run_dir / "trials.csv")
    assert after["fused_with"].notna().all()


def test_each_worker_fuses_its_own_trials(tmp_path: Path) -> None:
    result = run_tune(tmp_path, "space=units_lr", "space.model.units.max=64", "search.max_trials=4", "search.fuse=2",
                      "search.workers=2", *QUICK)
    trials = result.trials
    assert result.status == "completed" and len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert trials["fused_with"].notna().any()
