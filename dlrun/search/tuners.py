"""keras-tuner's tuners, each paired with its oracle as keras-tuner does, with one
trial runner shared by all: the oracle picks values, `run_trial` trains them.

The shared runner differs from keras-tuner's default in two ways: it writes no
per-epoch checkpoints (only Hyperband, which continues trained models, saves
weights once at the end of a trial), and it builds the space from the YAML
declaration instead of calling `build` once per conditional branch.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import keras_tuner as kt

from dlrun.search.config import TuneConfig, planned_trials
from dlrun.diagnostics.trials import write_diagnosis
from dlrun.search.space import declare


class DlrunTunerMixin:
    """Trial running and hooks shared by every algorithm."""

    keeps_weights = False  # Hyperband continues models trained by earlier trials

    def __init__(self, *args: Any, on_trial_begin: Optional[Callable] = None,
                 before_trial_end: Optional[Callable] = None, on_trial_end: Optional[Callable] = None,
                 fuse: Any = 1, **kwargs: Any) -> None:
        self.fuse = fuse  # search.fuse: trials trained at once as branches of one model (dlrun.search.fused)
        self._begin_hook = on_trial_begin
        self._before_end_hook = before_trial_end  # before the oracle hears that the trial ended
        self._end_hook = on_trial_end
        super().__init__(*args, **kwargs)

    def _populate_initial_space(self) -> None:
        """The space is declared up front from YAML (see dlrun.search.space.declare)."""

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        if self.fuse == 1:
            return super().search(*fit_args, **fit_kwargs)
        from dlrun.search import fused

        return fused.search(self, self.fuse, fit_kwargs.get("verbose", 0))

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> List[Dict[str, float]]:
        started = time.perf_counter()
        self.hypermodel.diagnoses = []
        try:
            results = [self._build_and_fit_model(trial, *args, trial_id=trial.trial_id, execution=i, **kwargs)
                       for i in range(self.executions_per_trial)]
        finally:  # a diverged trial fails, and its verdict says why
            write_diagnosis(Path(self.get_trial_dir(trial.trial_id)), self.hypermodel.diagnoses)
        if self.keeps_weights:
            self.hypermodel.last_model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        duration = round(time.perf_counter() - started, 3)
        for result in results:
            result["duration_s"] = duration
        return results

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)
        if self._begin_hook:
            self._begin_hook(trial)

    def on_trial_end(self, trial: Any) -> None:
        if self._before_end_hook:
            self._before_end_hook(trial)
        super().on_trial_end(trial)
        if self._end_hook:
            self._end_hook(trial)


class RandomSearchTuner(DlrunTunerMixin, kt.RandomSearch):
    pass


class GridOracle(kt.oracles.GridSearchOracle):
    """keras-tuner's grid oracle serves the next combination of a trial that has *ended*,
    so at most two trials run at once. With `serve_ahead` (a fused search) each trial it
    creates is also a starting point for the next request, so K are served at once, in
    the same grid order."""

    def __init__(self, *args: Any, serve_ahead: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serve_ahead = serve_ahead

    def populate_space(self, trial_id: str) -> Dict[str, Any]:
        response = super().populate_space(trial_id)
        if self.serve_ahead and response["status"] == "RUNNING":
            self._populate_next.append(trial_id)  # keras-tuner allows an id in this list more than once
        return response


class GridSearchTuner(DlrunTunerMixin, kt.Tuner):
    """kt.GridSearch with dlrun's grid oracle."""

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: Optional[int] = None,
                 seed: Optional[int] = None, hyperparameters: Any = None, tune_new_entries: bool = True,
                 allow_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3, fuse: Any = 1, **kwargs: Any) -> None:
        self.seed = seed
        oracle = GridOracle(objective=objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters,
                            tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
                            max_retries_per_trial=max_retries_per_trial,
                            max_consecutive_failed_trials=max_consecutive_failed_trials, serve_ahead=fuse != 1)
        super().__init__(oracle, hypermodel, fuse=fuse, **kwargs)


class BayesianTuner(DlrunTunerMixin, kt.BayesianOptimization):
    pass


class HyperbandTuner(DlrunTunerMixin, kt.Hyperband):
    keeps_weights = True

    def _build_hypermodel(self, hp: Any) -> Any:
        # Continuing a model loads its weights only; the fresh optimizer's state starts
        # anew, which Keras reports as a warning on every continued trial.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return super()._build_hypermodel(hp)


def make_tuner(tune: TuneConfig, hypermodel: Any, directory: str, overwrite: bool, **hooks: Any) -> Any:
    """The keras-tuner tuner for `search.name`, writing its state under `directory`."""
    s = tune.search
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(s.objective, direction=tune.direction),
        # keras-tuner replaces seed 0 by a random seed (`seed or random.randint(...)`):
        # shift by one so that every search.seed, 0 included, is repeatable.
        seed=s.seed + 1,
        hyperparameters=declare(tune.space),
        tune_new_entries=False,
        allow_new_entries=False,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=s.max_consecutive_failures,
        executions_per_trial=s.executions_per_trial,
        directory=directory,
        project_name="search",
        fuse=s.fuse,
        overwrite=overwrite,
        **hooks,
    )
    if s.name == "random":
        return RandomSearchTuner(max_trials=s.max_trials, **common)
    if s.name == "grid":
        return GridSearchTuner(max_trials=planned_trials(tune), **common)
    if s.name == "bayesian":
        return BayesianTuner(max_trials=s.max_trials, num_initial_points=s.num_initial_points, alpha=s.alpha,
                             beta=s.beta, **common)
    return HyperbandTuner(max_epochs=s.max_epochs, factor=s.factor, hyperband_iterations=s.hyperband_iterations,
                          **common)
