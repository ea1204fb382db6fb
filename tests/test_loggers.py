"""Loggers: logger=none adds nothing; logger=tensorboard writes event files that are read
back here (epoch scalars with the learning rate, weight and gradient histograms, the
diagnostics scalars, and a trial's HParams session)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from dlrun.errors import DlrunError
from dlrun.loggers import LOGGERS, logger_callbacks, trial_logger_callbacks, tune_log_dir
from tests.helpers import make_run

TINY = ("model.units=[16]", "trainer.epochs=2", "logger=tensorboard")


def fake_statistics() -> Any:
    """A stand-in for the diagnostics callback with the same contract: `frame()` (one row
    per layer and epoch, epoch 0 = before training) and `last_gradients` after each epoch.
    The output layer's dead_fraction is NaN (not measured), as for a layer with no ReLU."""
    import keras
    import pandas as pd

    class FakeStatistics(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: List[Dict[str, Any]] = []
            self.last_gradients: Dict[str, np.ndarray] = {}

        def on_train_begin(self, logs: Any = None) -> None:
            self._measure(0, float("nan"))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self._measure(epoch + 1, float(logs["loss"]))

        def _measure(self, epoch: int, loss: float) -> None:
            layers = [layer for layer in self.model.layers if layer.weights]
            for layer in layers:
                kernel = keras.ops.convert_to_numpy(layer.weights[0])
                self.rows.append(dict(epoch=epoch, layer=layer.name, activation="relu", units=kernel.shape[-1],
                                      grad_norm=0.1 * (epoch + 1), weight_norm=float(np.linalg.norm(kernel)),
                                      update_ratio=1e-3, dead_fraction=float("nan") if layer is layers[-1] else 0.25,
                                      saturated_fraction=0.0, loss=loss))
            self.last_gradients = {layer.name: np.random.normal(size=keras.ops.convert_to_numpy(layer.weights[0]).shape)
                                   for layer in layers} if epoch else {}

        def frame(self) -> "pd.DataFrame":
            return pd.DataFrame(self.rows)

    return FakeStatistics()


def fit(run: Any, extra: Any, statistics: Any = None) -> Any:
    """Train `run` as dlrun train does, with the statistics callback first and the logger's
    callbacks (`extra(statistics)`) after it. Returns the model."""
    from dlrun.losses import resolved_name
    from dlrun.preflight import checked
    from dlrun.training import compile_model, make_datasets, setup_runtime

    bundle = checked(run)[0]
    setup_runtime(run.trainer)
    data = make_datasets(bundle, run, resolved_name(run, bundle.meta))
    model = compile_model(run, bundle.meta, data.steps_per_epoch)
    callbacks = [*([statistics] if statistics is not None else []), *extra(statistics)]
    model.fit(data.train, validation_data=data.val, epochs=run.trainer.epochs, callbacks=callbacks, verbose=0,
              shuffle=False)
    return model


def events(folder: Path) -> Dict[str, Tuple[str, List[int], List[Any]]]:
    """{tag: (plugin, steps, values)} of every summary in `folder`'s event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        items = acc.Tensors(tag)
        out[tag] = (acc.SummaryMetadata(tag).plugin_data.plugin_name, [e.step for e in items],
                    [tensor_util.make_ndarray(e.tensor_proto) for e in items])
    return out


def session_start(folder: Path) -> Any:
    """The HParams SessionStartInfo written into `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    assert metadata.SESSION_START_INFO_TAG in acc.Tags()["tensors"], acc.Tags()
    content = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data
    assert content.plugin_name == "hparams"
    assert metadata.SESSION_END_INFO_TAG in acc.Tags()["tensors"]
    return metadata.parse_session_start_info_plugin_data(content.content)


def hparam(info: Any, name: str) -> Any:
    value = info.hparams[name]
    return getattr(value, value.WhichOneof("kind"))


# ------------------------------------------------------------------- no TensorFlow
def test_none_adds_no_callbacks(tmp_path: Path) -> None:
    run = make_run()
    assert run.logger.name == "none"
    assert logger_callbacks(run, tmp_path, None) == []
    assert trial_logger_callbacks(run, tune_log_dir(tmp_path, "00"), {"lr": 0.1}) == []
    assert list(tmp_path.iterdir()) == []


def test_registry_names_every_logger_of_the_schema() -> None:
    from dlrun.config import schema

    assert set(LOGGERS) == set(schema.LOGGERS)
    assert {p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "logger").glob("*.yaml")} == set(LOGGERS)


def test_tune_log_dir_puts_every_trial_under_one_logdir(tmp_path: Path) -> None:
    assert tune_log_dir(tmp_path, "03") == tmp_path / "tensorboard" / "trial_03"
    assert tune_log_dir(tmp_path, "03", execution=1) == tmp_path / "tensorboard" / "trial_03_1"


def test_missing_tensorboard_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(*TINY)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    with pytest.raises(DlrunError, match=r"^logger=tensorboard: .*pip install 'tensorboard") as err:
        logger_callbacks(run, tmp_path, None)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------- event files
def test_tensorboard_writes_scalars_histograms_and_diagnostics(tmp_path: Path) -> None:
    run = make_run(*TINY)
    model = fit(run, lambda stats: logger_callbacks(run, tmp_path, stats), fake_statistics())
    root = tmp_path / "tensorboard"
    assert sorted(p.name for p in root.iterdir()) == ["diagnostics", "train", "validation"]

    train = events(root / "train")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert train[tag][0] == "scalars" and train[tag][1] == [0, 1], tag
    assert train["epoch_learning_rate"][2][0] == pytest.approx(run.optimizer.learning_rate)
    assert events(root / "validation")["epoch_loss"][1] == [0, 1]
    for weight in model.weights:  # Keras's weight histograms, every epoch (histogram_freq=1)
        tag = f"{weight.path}/histogram"
        assert train[tag][0] == "histograms" and train[tag][1] == [0, 1], tag

    diag = events(root / "diagnostics")
    layers = [layer.name for layer in model.layers if layer.weights]
    for layer in layers:
        assert diag[f"gradients/{layer}"][0] == "histograms" and diag[f"gradients/{layer}"][1] == [0, 1]
        for stat in ("grad_norm", "update_ratio", "saturated_fraction"):
            assert diag[f"diagnostics/{layer}/{stat}"][1] == [0, 1], (layer, stat)
    assert diag[f"diagnostics/{layers[0]}/grad_norm"][2] == pytest.approx([0.2, 0.3])  # epochs 1 and 2, not 0
    assert f"diagnostics/{layers[0]}/dead_fraction" in diag
    assert f"diagnostics/{layers[-1]}/dead_fraction" not in diag  # NaN: left out


def test_histogram_freq_sets_the_epochs_of_weight_and_gradient_histograms(tmp_path: Path) -> None:
    run = make_run(*TINY, "trainer.epochs=3", "logger.histogram_freq=2")
    fit(run, lambda stats: logger_callbacks(run, tmp_path, stats), fake_statistics())
    train, diag = events(tmp_path / "tensorboard" / "train"), events(tmp_path / "tensorboard" / "diagnostics")
    histograms = [steps for plugin, steps, _ in [*train.values(), *diag.values()] if plugin == "histograms"]
    assert histograms and all(steps == [0, 2] for steps in histograms)
    assert train["epoch_loss"][1] == [0, 1, 2]


def test_without_statistics_only_keras_callback_is_added(tmp_path: Path) -> None:
    run = make_run(*TINY, "trainer.epochs=1")
    fit(run, lambda stats: logger_callbacks(run, tmp_path, stats))
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["train", "validation"]


def test_trial_writes_its_folder_and_an_hparams_session(tmp_path: Path) -> None:
    run = make_run(*TINY)
    log_dir = tune_log_dir(tmp_path, "03")
    values = {"optimizer.learning_rate": 0.01, "model.units": [32, 16], "trainer.batch_size": np.int64(64),
              "model.batch_norm": True, "tuner/epochs": 2}
    fit(run, lambda stats: trial_logger_callbacks(run, log_dir, values, stats), fake_statistics())
    assert {p.name for p in log_dir.iterdir()} >= {"train", "validation", "diagnostics"}
    assert events(log_dir / "train")["epoch_loss"][1] == [0, 1]
    assert "gradients/dense_1" in events(log_dir / "diagnostics")

    info = session_start(log_dir)
    assert info.group_name == "trial_03"
    assert set(info.hparams) == {"optimizer.learning_rate", "model.units", "trainer.batch_size", "model.batch_norm"}
    assert hparam(info, "optimizer.learning_rate") == pytest.approx(0.01)
    assert hparam(info, "model.units") == "[32, 16]"
    assert hparam(info, "trainer.batch_size") == 64
    assert hparam(info, "model.batch_norm") is True


def test_trial_takes_keras_tuner_hyperparameters(tmp_path: Path) -> None:
    import keras_tuner as kt

    run = make_run(*TINY, "trainer.epochs=1")
    hp = kt.HyperParameters()
    hp.Float("optimizer.learning_rate", 1e-3, 1e-1, sampling="log", default=0.02)
    hp.Choice("model.activation", ["relu", "tanh"], default="tanh")
    log_dir = tune_log_dir(tmp_path, "07", execution=1)
    fit(run, lambda stats: trial_logger_callbacks(run, log_dir, hp, stats, trial_id="07"))
    info = session_start(log_dir)
    assert info.group_name == "07"  # every fit of trial 07 in one HParams row
    assert hparam(info, "optimizer.learning_rate") == pytest.approx(0.02)
    assert hparam(info, "model.activation") == "tanh"
