"""Fused trials (`search.fuse=K`): the tuner asks the oracle for up to K trials at once and
trains those that can share one graph as K branches of one Keras model (see
dlrun.fusion.branches), in one `fit` over one tf.data pipeline.

The K trials come from keras-tuner's own mechanism for serving several trials at once
(distributed mode): each is requested under its own tuner id, `<tuner>~<k>`. So the
oracle (random, grid, Bayesian with its "hallucinated" running trials, Hyperband's rounds)
chooses exactly as it does for K workers, saves them as running, and on resume after a
kill puts them back in its retry queue: no trial is lost or run twice.

Every trial is built by the hypermodel's `build` (the one build path), gets the same
callbacks an unfused trial gets (early stopping, plateau schedule, diagnostics, loggers,
each on its own branch), and is reported to the oracle with its own history and
objective, as `Tuner._try_run_and_update_trial` does. Trials that cannot share a graph
(another batch size, loss target format, epoch budget; a two-phase transfer model; a
distribution strategy) train in a group of their own kind, or alone through keras-tuner's
usual path."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dlrun.config.schema import RunConfig
from dlrun.fusion.rules import AUTO_MAX, auto_fuse, branch_bytes, free_memory, fusion_key

SLOT = "{tuner}~{k}"      # the tuner id a fused tuner requests its k-th trial under
IDLE_WAIT_S = 0.5         # the oracle is waiting for running trials (Hyperband between rounds)
FUSED_FILE = "fused.json"  # in a trial's folder: the trials it trained with


def slot_id(tuner_id: str, k: int) -> str:
    return SLOT.format(tuner=tuner_id, k=k)


def slot_owner(tuner_id: str) -> str:
    """The tuner (process) a slot id belongs to: `tuner0~3` -> `tuner0`."""
    return str(tuner_id).split("~", 1)[0]


def group_key(run: RunConfig, values: Dict[str, Any], loss_name: str) -> Optional[Tuple]:
    """A trial's fusion key (dlrun.fusion.rules.fusion_key) with its Hyperband budget."""
    return fusion_key(run, loss_name, int(values.get("tuner/epochs", run.trainer.epochs)),
                      int(values.get("tuner/initial_epoch", 0)))


# ----------------------------------------------------------------- the search loop
def claim(oracle: Any, tuner_id: str, k: int) -> Tuple[List[Any], bool]:
    """Up to `k` trials from the oracle, one per slot id. Returns them and whether the
    oracle said the search is over."""
    from keras_tuner.src.engine import trial as trial_module

    trials: List[Any] = []
    for slot in range(k):
        trial = oracle.create_trial(slot_id(tuner_id, slot))
        if trial.status == trial_module.TrialStatus.STOPPED:
            return trials, True
        if trial.status == trial_module.TrialStatus.IDLE:  # waiting on running trials: run what we have
            break
        trials.append(trial)
    return trials, False


def search(tuner: Any, fuse: Any, verbose: int = 0) -> None:
    """keras-tuner's `BaseTuner.search` loop, asking for up to `fuse` trials at a time."""
    from keras_tuner.src.distribute import utils as dist_utils

    if not dist_utils.has_chief_oracle() or dist_utils.is_chief_oracle():
        tuner.oracle.verbose = verbose
    tuner.on_search_begin()
    k = None if fuse == "auto" else int(fuse)
    while True:
        tuner.pre_create_trial()
        trials, stopped = claim(tuner.oracle, tuner.tuner_id, k or AUTO_MAX)
        if not trials:
            if stopped:
                break
            time.sleep(IDLE_WAIT_S)
            continue
        run_trials(tuner, trials, k)
    tuner.on_search_end()


@dataclass
class Member:
    trial: Any
    run: RunConfig
    key: Optional[Tuple]
    model: Any = None
    recorder: Any = None
    statistics: Any = None
    callbacks: List[Any] = field(default_factory=list)


def run_trials(tuner: Any, trials: Sequence[Any], k: Optional[int]) -> None:
    """Run claimed trials: fusable ones in groups of one key, the rest alone; then end
    every trial (a failure limit hit on one is raised after all have ended)."""
    import keras_tuner as kt

    from dlrun.losses import resolved_name

    hm = tuner.hypermodel
    for trial in trials:
        tuner.on_trial_begin(trial)
    members: List[Member] = []
    for trial in trials:
        hp = trial.hyperparameters
        try:
            run = hm.run_config(hp)
        except kt.errors.FailedTrialError:
            tuner._try_run_and_update_trial(trial)  # fails with the config error, as unfused
            continue
        members.append(Member(trial, run, group_key(run, hp.values, resolved_name(run, hm.bundle.meta))))
    groups: Dict[Tuple, List[Member]] = {}
    for member in members:
        if member.key is None or tuner.executions_per_trial > 1 or hm.tune.search.cv_folds > 1:
            tuner._try_run_and_update_trial(member.trial)
        else:
            groups.setdefault(member.key, []).append(member)
    for group in groups.values():
        if len(group) == 1:
            tuner._try_run_and_update_trial(group[0].trial)
        else:
            train_group(tuner, group, k)
    end_all(tuner, trials)


def end_all(tuner: Any, trials: Sequence[Any]) -> None:
    """`on_trial_end` for each trial; the oracle's consecutive-failure stop (a RuntimeError)
    is raised once every trial of the group has ended, so none is left running."""
    error: Optional[BaseException] = None
    for trial in trials:
        try:
            tuner.on_trial_end(trial)
        except RuntimeError as err:
            error = error or err
    if error is not None:
        raise error


def train_group(tuner: Any, group: List[Member], k: Optional[int]) -> None:
    """Build each member's model and train them fused; with search.fuse=auto, in chunks
    that fit in memory. A trial whose build fails fails alone; an error of the fused fit
    itself sends each member through the unfused path, where a bad one fails alone."""
    import keras
    import keras_tuner as kt

    hm = tuner.hypermodel
    keras.backend.clear_session()  # (which collects garbage too)
    built: List[Member] = []
    for member in group:
        try:
            member.model = tuner._build_hypermodel(member.trial.hyperparameters)
        except Exception as err:  # noqa: BLE001 - keras-tuner's own rule: the trial fails, the search goes on
            if isinstance(err, kt.errors.FatalError):
                raise
            fail(member.trial, err)
            continue
        built.append(member)
    if k is None and built:
        data = hm.datasets(built[0].run)
        size = auto_fuse(branch_bytes(built[0].model, data.batch_size), free_memory(), None)
        chunks = [built[i:i + size] for i in range(0, len(built), size)]
    else:
        chunks = [built] if built else []
    for chunk in chunks:
        try:
            fit_fused(tuner, chunk)
        except Exception as err:  # noqa: BLE001
            if isinstance(err, kt.errors.FatalError):
                raise
            from dlrun.display import warn
            from dlrun.errors import first_line

            warn(f"{len(chunk)} fused trials failed together ({first_line(err)}); training them one at a time")
            for member in chunk:  # a graph that fails as a whole: each trial alone, as unfused
                tuner._try_run_and_update_trial(member.trial)


def fit_fused(tuner: Any, group: List[Member]) -> None:
    """One fused fit of `group`, then each trial reported to the oracle as if alone."""
    import keras_tuner as kt
    from keras_tuner.src.engine import trial as trial_module

    from dlrun.diagnostics.trials import write_diagnosis
    from dlrun.fusion.branches import BranchCallbacks, FusedBranches
    from dlrun.training import steps_per_execution

    hm = tuner.hypermodel
    started = time.perf_counter()
    first = group[0]
    data = hm.datasets(first.run)
    epochs, initial = hm.epoch_budget(first.trial.hyperparameters, first.run)
    for member in group:
        member.recorder, member.statistics, member.callbacks = hm.trial_callbacks(
            member.trial.hyperparameters, member.run, member.model, hm.bundle, (member.trial.trial_id, 0))
    fused = FusedBranches([m.model for m in group], name="fused_trials")
    fused.prepare(steps_per_execution(first.run.trainer, data.steps_per_epoch))
    callbacks: List[Any] = [BranchCallbacks([m.callbacks for m in group])]
    if hm.epoch_callback is not None:
        callbacks.append(group_progress(hm.epoch_callback, fused))
    fused.fit(data.train, validation_data=data.val, epochs=epochs, initial_epoch=initial, callbacks=callbacks,
              verbose=0, shuffle=False)
    duration = round(time.perf_counter() - started, 3)
    ids = [m.trial.trial_id for m in group]
    for member in group:
        trial = member.trial
        trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
        write_fused(trial_dir, [t for t in ids if t != trial.trial_id])
        diagnoses: List[Any] = []
        try:
            result = hm.trial_result(member.run, member.model, hm.bundle, member.recorder, member.statistics,
                                     diagnoses)
            result["duration_s"] = duration
            if tuner.keeps_weights:
                save_for_continuation(tuner, trial.trial_id, member.model)
            report(tuner, trial, result)
            trial.status = trial_module.TrialStatus.COMPLETED
        except kt.errors.FailedTrialError as err:
            fail(trial, err)
        finally:
            write_diagnosis(trial_dir, diagnoses)


def group_progress(live: Any, fused: Any) -> Any:
    """The live view's epoch callback fed with how many branches still train."""
    import keras

    class GroupProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
            training = sum(fused.is_active(k) for k in range(len(fused.branches)))
            live.on_epoch_end(epoch, {"branches training": float(training)})

    return GroupProgress()


def report(tuner: Any, trial: Any, result: Dict[str, float]) -> None:
    """As `BaseTuner._run_and_update_trial`: the objective's best step and every metric."""
    from keras_tuner.src.engine import tuner_utils

    objective = tuner.oracle.objective
    tuner_utils.validate_trial_results(result, objective, "fused fit")
    tuner.oracle.update_trial(trial.trial_id, tuner_utils.convert_to_metrics_dict(result, objective),
                              step=tuner_utils.get_best_step(result, objective))


def save_for_continuation(tuner: Any, trial_id: str, model: Any) -> None:
    """What Hyperband's next round loads to continue this trial: weights and build config."""
    from keras_tuner.src import utils

    model.save_weights(tuner._get_checkpoint_fname(trial_id))
    utils.save_json(tuner._get_build_config_fname(trial_id), model.get_build_config())


def fail(trial: Any, err: BaseException) -> None:
    """Mark `trial` failed the way keras-tuner does (the message is a traceback whose last
    line the trials table shows)."""
    import keras_tuner as kt
    from keras_tuner.src.engine import trial as trial_module

    failed = isinstance(err, kt.errors.FailedTrialError)
    trial.status = trial_module.TrialStatus.FAILED if failed else trial_module.TrialStatus.INVALID
    trial.message = "".join(traceback.format_exception(type(err), err, err.__traceback__))


def write_fused(trial_dir: Path, others: Sequence[str]) -> None:
    from dlrun.results import rundir

    rundir.write_json(trial_dir / FUSED_FILE, {"fused_with": [str(t) for t in others]})


def read_fused(trial_dir: Path) -> Optional[str]:
    """The trials a trial was trained with, as the trials table shows them ('4 5 6'), or None."""
    import json

    from dlrun.search.display import table_id

    path = Path(trial_dir) / FUSED_FILE
    if not path.exists():
        return None
    others = json.loads(path.read_text()).get("fused_with", [])
    return " ".join(str(table_id(t)) for t in others)
