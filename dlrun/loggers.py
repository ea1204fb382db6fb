"""Loggers: Keras callbacks that mirror a run into a viewer outside the run folder.

`logger=none` adds nothing. `logger=tensorboard` writes event files under
RUN_DIR/tensorboard/ (view them with `tensorboard --logdir experiments`):

    train/         Keras's TensorBoard callback: epoch_<metric> and epoch_learning_rate
    validation/    scalars, weight histograms (<layer>/<weight>/histogram) every
                   logger.histogram_freq epochs, and the Keras model for the Graphs tab
    diagnostics/   ours: gradients/<layer> histograms (same epochs as the weights) and
                   diagnostics/<layer>/<grad_norm|update_ratio|dead_fraction|
                   saturated_fraction> scalars, read from the diagnostics callback

In `dlrun tune` each trial writes the same into RUN_DIR/tensorboard/trial_<id>/ plus an
HParams session (its hyperparameter values; TensorBoard takes the final metrics from
the trial's epoch scalars), so the HParams tab lists every trial.

Our callback writes to its own folder rather than into train/: TensorBoard polls only
the newest event file of a folder while it runs, so two writers in one folder would
hide one another's updates. Nothing here imports TensorFlow until a logger is built.
A new logger is a function with the signature of `tensorboard_logger` plus a line in LOGGERS.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from dlrun.config.schema import RunConfig
from dlrun.errors import ConfigError, DlrunError, one_of

TENSORBOARD_DIR = "tensorboard"    # RUN_DIR/tensorboard/: the logdir of one run (of every trial in tune)
DIAGNOSTICS_RUN = "diagnostics"    # our writer's sub-folder, next to Keras's train/ and validation/
DIAGNOSTIC_SCALARS = ("grad_norm", "update_ratio", "dead_fraction", "saturated_fraction")
TUNER_KEYS = "tuner/"              # keras-tuner's bookkeeping values (tuner/epochs, ...): not hyperparameters


@dataclass(frozen=True)
class TrialInfo:
    """What a search trial adds to a logger: its id (the HParams session group, shared by
    the fits of one trial) and its hyperparameter values (a dict or kt.HyperParameters)."""
    trial_id: str
    hparams: Any


LoggerFn = Callable[[RunConfig, Path, Optional[Any], Optional[TrialInfo]], List[Any]]


# ------------------------------------------------------------------- public API
def logger_callbacks(run: RunConfig, run_dir: Path, statistics: Optional[Any]) -> List[Any]:
    """The callbacks of `run.logger` for `dlrun train`, writing under RUN_DIR/<logger name>/.
    `statistics`: the diagnostics callback (or None), placed before these in `fit`."""
    name = run.logger.name
    return _logger(name)(run, Path(run_dir) / name, statistics, None)


def trial_logger_callbacks(run: RunConfig, log_dir: Path, hparams: Union[Mapping[str, Any], Any],
                           statistics: Optional[Any] = None, trial_id: Optional[str] = None) -> List[Any]:
    """The same callbacks for one fit of a search trial, writing into `log_dir` (see
    `tune_log_dir`), plus the trial's HParams session. `hparams`: the trial's values, as a
    dict (keys under 'tuner/' are left out) or keras-tuner's HyperParameters (then its
    search domains are written too); `trial_id` (default: the folder's name) groups the
    fits of one trial (executions, folds) into one HParams row."""
    log_dir = Path(log_dir)
    trial = TrialInfo(str(trial_id) if trial_id is not None else log_dir.name, hparams)
    return _logger(run.logger.name)(run, log_dir, statistics, trial)


def tune_log_dir(run_dir: Path, trial_id: Any, execution: int = 0) -> Path:
    """RUN_DIR/tensorboard/trial_<id>: one TensorBoard run per trial, so that
    `tensorboard --logdir RUN_DIR/tensorboard` shows them all. A trial's later fits
    (execution > 0: executions_per_trial, cross-validation folds) get sibling folders
    trial_<id>_<execution>, never nested ones: a session folder inside another would
    mix its scalars into the outer trial's metrics."""
    name = f"trial_{trial_id}" + (f"_{execution}" if execution else "")
    return Path(run_dir) / TENSORBOARD_DIR / name


def require_tensorboard() -> None:
    """Raise a one-line DlrunError when TensorBoard's summary writer cannot be used.
    TensorFlow 2.21 does not install `tensorboard`; without it tf.summary has no
    scalar/histogram and Keras's callback fails at the end of the first epoch."""
    try:
        importlib.import_module("tensorboard")
        import tensorflow as tf

        tf.summary.create_file_writer, tf.summary.scalar, tf.summary.histogram  # noqa: B018
    except (ImportError, AttributeError) as err:
        raise DlrunError(f"logger=tensorboard: TensorBoard's summary writer is unavailable ({err}); "
                         f"install it with: pip install 'tensorboard>=2.20,<2.22'") from None


# ------------------------------------------------------------------- loggers
def no_logger(run: RunConfig, log_dir: Path, statistics: Optional[Any], trial: Optional[TrialInfo]) -> List[Any]:
    """logger=none: the run folder's own tables and plots only."""
    return []


def tensorboard_logger(run: RunConfig, log_dir: Path, statistics: Optional[Any],
                       trial: Optional[TrialInfo]) -> List[Any]:
    """Keras's TensorBoard callback (epoch scalars with the learning rate, weight
    histograms, the Keras model graph), our gradients/diagnostics callback when there are
    statistics, and keras-tuner's HParams callback for a trial.

    Keras's callback settings: write_graph=True costs one JSON summary of the model (Keras
    3 writes no op graph of its train function), profile_batch=0 (the profiler slows the
    profiled steps and needs the tensorboard-plugin-profile package to be viewed),
    update_freq='epoch' (per-batch scalars would add a write per step on small data), no
    steps-per-second, images or embeddings."""
    import keras

    require_tensorboard()
    freq = run.logger.histogram_freq
    callbacks: List[Any] = [keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=freq, write_graph=True,
                                                        profile_batch=0, update_freq="epoch")]
    if statistics is not None:
        callbacks.append(diagnostics_callback(log_dir / DIAGNOSTICS_RUN, statistics, freq))
    if trial is not None:
        callbacks.append(hparams_callback(log_dir, trial))
    return callbacks


LOGGERS: Dict[str, LoggerFn] = {  # the config group's file name -> the function that builds its callbacks
    "none": no_logger,
    "tensorboard": tensorboard_logger,
}


def _logger(name: str) -> LoggerFn:
    if name not in LOGGERS:
        raise ConfigError("logger.name", name, one_of(name, LOGGERS))
    return LOGGERS[name]


# ------------------------------------------------------------------- tensorboard pieces
def diagnostics_callback(log_dir: Path, statistics: Any, histogram_freq: int) -> Any:
    """A callback that, after the diagnostics callback measured an epoch, writes
    `statistics.last_gradients` as gradients/<layer> histograms (every `histogram_freq`
    epochs, at the same steps as Keras's weight histograms) and the newest epoch of
    `statistics.frame()` as diagnostics/<layer>/<statistic> scalars (NaN left out).
    Steps are Keras's 0-based epoch indices, as in train/ and validation/."""
    import keras
    import numpy as np
    import tensorflow as tf

    class TensorBoardDiagnostics(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._writer: Any = None
            self._written = 0  # the newest statistics epoch already written (0: before training)

        def on_train_begin(self, logs: Optional[Dict] = None) -> None:
            self._writer = tf.summary.create_file_writer(str(log_dir))
            self._written = 0

        def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
            if self._writer is None:
                return
            with self._writer.as_default(step=epoch):
                if histogram_freq and epoch % histogram_freq == 0:
                    self._gradients()
                self._scalars()
            self._writer.flush()

        def on_train_end(self, logs: Optional[Dict] = None) -> None:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

        def _gradients(self) -> None:
            for layer, grad in (getattr(statistics, "last_gradients", None) or {}).items():
                values = np.asarray(grad, dtype="float64").ravel()
                values = values[np.isfinite(values)]  # a diverging run: histogram what is left
                if values.size:
                    tf.summary.histogram(f"gradients/{layer}", values)

        def _scalars(self) -> None:
            frame = statistics.frame()
            if frame is None or frame.empty or "epoch" not in frame:
                return
            newest = int(frame["epoch"].max())
            if newest <= self._written:  # nothing measured since the last write
                return
            self._written = newest
            for row in frame[frame["epoch"] == newest].to_dict("records"):
                for stat in DIAGNOSTIC_SCALARS:
                    value = row.get(stat)
                    if value is not None and math.isfinite(float(value)):
                        tf.summary.scalar(f"diagnostics/{row['layer']}/{stat}", float(value))

    return TensorBoardDiagnostics()


def hparams_callback(log_dir: Path, trial: TrialInfo) -> Any:
    """tensorboard.plugins.hparams' KerasCallback, as keras-tuner's
    `Tuner._configure_tensorboard_dir` adds it: a session-start summary with the trial's
    values (group name = trial id) when training begins, a session-end one when it ends.
    The metrics are not written here: TensorBoard reads them from the epoch scalars of
    the session folder's train/ and validation/ runs. No experiment summary is written
    (it would have to name every metric, and with `--logdir experiments` one search's
    experiment summary would hide the others'): TensorBoard builds the table from the
    sessions, so searches with different spaces show side by side."""
    from tensorboard.plugins.hparams import api as hparams_api

    return hparams_api.KerasCallback(writer=str(log_dir), hparams=hparam_values(trial.hparams, hparams_api),
                                     trial_id=trial.trial_id)


def hparam_values(hparams: Union[Mapping[str, Any], Any], hparams_api: Any) -> Dict[Any, Any]:
    """{HParam or name: value} for the HParams summary. keras-tuner HyperParameters go
    through keras-tuner's own converter (`tuner_utils.convert_hyperparams_to_hparams`,
    which adds each one's domain); a dict keeps its values, made into the bool, int,
    float or str that the summary accepts (a list becomes its text, '[64, 32]')."""
    if hasattr(hparams, "space") and hasattr(hparams, "values"):
        try:
            from keras_tuner.src.engine.tuner_utils import convert_hyperparams_to_hparams

            return convert_hyperparams_to_hparams(hparams, hparams_api)
        except (ImportError, ValueError):  # another keras-tuner layout or an unknown type: values only
            hparams = hparams.values
    return {str(k): _plain(v) for k, v in dict(hparams).items() if not str(k).startswith(TUNER_KEYS)}


def _plain(value: Any) -> Union[bool, int, float, str]:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a NumPy scalar
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else str(value)
