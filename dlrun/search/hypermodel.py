"""The keras-tuner HyperModel: `build(hp)` writes the trial's values into a copy
of the config and calls the same `compile_model` as `dlrun train`; `fit` trains
with the same data pipeline, callbacks and NaN guard, and returns the metrics of
the best epoch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import keras_tuner as kt
import numpy as np

from dlrun.config.schema import RunConfig
from dlrun.data import DataBundle
from dlrun.data.images import concat_rows, take_rows
from dlrun.errors import ConfigError
from dlrun.losses import resolved_name
from dlrun.search.config import TuneConfig
from dlrun.diagnostics.session import diagnose_fit, watch
from dlrun.loggers import trial_logger_callbacks, tune_log_dir
from dlrun.finetune import fit_phases, second_phase_config
from dlrun.training import Datasets, compile_model, epoch_recorder, fit_callbacks, make_datasets, pipeline_key


class DlrunHyperModel(kt.HyperModel):
    def __init__(self, tune: TuneConfig, bundle: DataBundle, epoch_callback: Optional[Any] = None,
                 run_dir: Optional[Path] = None) -> None:
        super().__init__(name="dlrun")
        self.tune = tune
        self.bundle = bundle
        self.epoch_callback = epoch_callback  # a keras callback for the live view, or None
        self.run_dir = run_dir  # the search folder: logger=tensorboard writes each trial under it
        self.last_model: Any = None
        self.diagnoses: List[Any] = []  # the verdict of each fit of the running trial (see tuners.run_trial)
        self._datasets: Dict[Tuple, Datasets] = {}

    # -- config ---------------------------------------------------------------
    def run_config(self, hp: kt.HyperParameters) -> RunConfig:
        try:
            return self.tune.trial_config(dict(hp.values))
        except ConfigError as err:
            raise kt.errors.FailedTrialError(f"invalid config: {err}") from None

    def datasets(self, run: RunConfig, bundle: Optional[DataBundle] = None, key: Any = None) -> Datasets:
        """tf.data pipelines, built once per batch size and loss for the whole search."""
        bundle = bundle or self.bundle
        loss_name = resolved_name(run, bundle.meta)
        cache_key = (*pipeline_key(run, loss_name), key)
        if cache_key not in self._datasets:
            self._datasets[cache_key] = make_datasets(bundle, run, loss_name)
        return self._datasets[cache_key]

    # -- keras-tuner API -------------------------------------------------------
    def build(self, hp: kt.HyperParameters) -> Any:
        run = self.run_config(hp)
        model = compile_model(run, self.bundle.meta, self.datasets(run).steps_per_epoch)
        self.last_model = model
        return model

    def fit(self, hp: kt.HyperParameters, model: Any, *args: Any, trial_id: Any = None, execution: int = 0,
            **kwargs: Any) -> Dict[str, float]:
        """`trial_id`, `execution`: passed by DlrunTunerMixin.run_trial (for the trial's logger folder)."""
        run = self.run_config(hp)
        if self.tune.search.cv_folds > 1:
            return self._fit_folds(hp, run, trial_id, execution)
        return self._fit_once(hp, run, model, self.datasets(run), log=(trial_id, execution))

    # -- training --------------------------------------------------------------
    def _fit_once(self, hp: kt.HyperParameters, run: RunConfig, model: Any, data: Datasets,
                  bundle: Optional[DataBundle] = None, log: Tuple[Any, int] = (None, 0)) -> Dict[str, float]:
        bundle = bundle or self.bundle
        epochs, initial = self.epoch_budget(hp, run)
        recorder, statistics, callbacks = self.trial_callbacks(hp, run, model, bundle, log)
        live = [self.epoch_callback] if self.epoch_callback is not None else []

        def callbacks_for(phase: int, total: int) -> List[Any]:  # fine-tuning: fresh callbacks at its own rate
            return [*callbacks, *live] if phase == 1 else [*fit_callbacks(second_phase_config(run), recorder, None),
                                                          *live]

        fit_phases(run, model, bundle.meta, data, recorder, callbacks_for, epochs=epochs, initial_epoch=initial,
                   verbose=0, shuffle=False)
        return self.trial_result(run, model, bundle, recorder, statistics, self.diagnoses)

    @staticmethod
    def epoch_budget(hp: kt.HyperParameters, run: RunConfig) -> Tuple[int, int]:
        """The epoch a trial's fit ends at and the one it starts from (Hyperband continues
        a model trained by an earlier trial)."""
        return int(hp.values.get("tuner/epochs", run.trainer.epochs)), int(hp.values.get("tuner/initial_epoch", 0))

    def trial_callbacks(self, hp: kt.HyperParameters, run: RunConfig, model: Any, bundle: DataBundle,
                        log: Tuple[Any, int] = (None, 0)) -> Tuple[Any, Any, List[Any]]:
        """The epoch recorder, the diagnostics statistics (or None) and every callback of
        one fit of a trial (the live view's aside): the same whether it trains alone or fused."""
        recorder = epoch_recorder()
        statistics = watch(run, model, bundle, resolved_name(run, bundle.meta))
        callbacks = fit_callbacks(run, recorder, statistics)
        trial_id, execution = log
        if self.run_dir is not None and trial_id is not None:
            callbacks += trial_logger_callbacks(run, tune_log_dir(self.run_dir, trial_id, execution), hp, statistics,
                                                trial_id=str(trial_id))
        return recorder, statistics, callbacks

    def trial_result(self, run: RunConfig, model: Any, bundle: DataBundle, recorder: Any, statistics: Any,
                     diagnoses: List[Any]) -> Dict[str, float]:
        """What one fit reports to the oracle: every metric of the best epoch (by the
        objective), the best epoch, epochs run and parameter count. Appends the fit's
        diagnosis to `diagnoses`; raises FailedTrialError for a diverged fit or a missing objective."""
        history = recorder.frame()
        if statistics is not None and run.diagnostics.enabled:
            diagnoses.append(diagnose_fit(run, bundle, statistics.frame(), history))
        if recorder.diverged_epoch is not None:
            raise kt.errors.FailedTrialError(f"loss became NaN/inf at epoch {recorder.diverged_epoch}")
        objective = self.tune.search.objective
        if history.empty or objective not in history:
            raise kt.errors.FailedTrialError(f"the objective {objective!r} was not produced")
        column = history[objective]
        best = column.idxmax() if self.tune.direction == "max" else column.idxmin()
        row = history.loc[best]
        skip = {"epoch", "learning_rate", "epoch_time_s"}
        result = {k: float(v) for k, v in row.items() if k not in skip and math.isfinite(float(v))}
        result.update(best_epoch=float(row["epoch"]), epochs_run=float(len(history)),
                      params=float(model.count_params()))
        return result

    def _fit_folds(self, hp: kt.HyperParameters, run: RunConfig, trial_id: Any = None,
                   execution: int = 0) -> Dict[str, float]:
        """k-fold cross-validation over train+validation: the mean of every metric,
        and the standard deviation of the objective."""
        from sklearn.model_selection import KFold, StratifiedKFold

        from dlrun.data import DataBundle

        b = self.bundle
        x = concat_rows(b.x_train, b.x_val)
        y = np.concatenate([b.y_train, b.y_val])
        folds = self.tune.search.cv_folds
        splitter = (KFold(folds, shuffle=True, random_state=run.data.split_seed) if b.meta.task == "regression"
                    else StratifiedKFold(folds, shuffle=True, random_state=run.data.split_seed))
        results: List[Dict[str, float]] = []
        for i, (tr, va) in enumerate(splitter.split(np.zeros(len(y)), y)):
            fold = DataBundle(take_rows(x, tr), y[tr], take_rows(x, va), y[va], b.x_test, b.y_test, b.meta)
            model = self.build(hp) if i else self.last_model
            results.append(self._fit_once(hp, run, model, self.datasets(run, fold, key=("fold", i)), fold,
                                          log=(trial_id, execution * folds + i)))
        keys = set.intersection(*(set(r) for r in results))
        out = {k: float(np.mean([r[k] for r in results])) for k in keys}
        objective = self.tune.search.objective
        out[f"{objective}_std"] = float(np.std([r[objective] for r in results]))
        return out
