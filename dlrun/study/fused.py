"""Fused study runs (`study.fuse=K`): runs of one seed that can share one graph (the
contenders of a seed, or the learning rates of study.tune_lr's grid) trained as K
branches of one Keras model (dlrun.fusion.branches), in one `fit` over one tf.data
pipeline. Each stays an ordinary run: its own folder, config, history, curves, model,
metrics.json and registry entry, written by the same functions `dlrun train` uses
(`prepare_run` / `finish_run`).

Fusing changes what a run computes by float rounding only: runs of one seed see the same
batches in the same order unfused too (the shuffle follows trainer.seed), and each branch
is built after seeding, as its unfused run is. Two things differ, and metrics.json says
so: `fused_with` names the runs it trained with and `fit_time_s` is the group's; and a
fused run keeps no mid-run training-state backup (a study trains an interrupted run again
from its start in any case)."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from dlrun.config.schema import RunConfig
from dlrun.fusion.rules import auto_fuse, branch_bytes, free_memory, fusion_key


def run_key(run: RunConfig) -> Optional[Tuple]:
    """What runs of a study must share to be fused: the fusion key and the data they read
    (None: this run trains alone)."""
    from dlrun.losses import resolved_name
    from dlrun.preflight import uses_images
    from dlrun.study.plan import bundle_for

    key = fusion_key(run, resolved_name(run, bundle_for(run).meta), run.trainer.epochs)
    return None if key is None else (key, repr(run.data), uses_images(run))


def plan_groups(keys: Sequence[Optional[Tuple]], k: int) -> List[List[int]]:
    """Positions grouped for fused fits: equal keys together, at most `k` per group and
    the groups of a key as even as can be (9 runs, k=8: 5 and 4, not 8 and 1); a position
    whose key is None trains alone. Groups in the order of their first position."""
    by_key: Dict[Tuple, List[int]] = {}
    groups: List[List[int]] = []
    for i, key in enumerate(keys):
        if key is None or k <= 1:
            groups.append([i])
        else:
            by_key.setdefault(key, []).append(i)
    for positions in by_key.values():
        parts = -(-len(positions) // k)
        size, extra = divmod(len(positions), parts)
        start = 0
        for part in range(parts):
            end = start + size + (part < extra)
            groups.append(positions[start:end])
            start = end
    return sorted(groups, key=lambda g: g[0])


def group_size(fuse: Any, run: RunConfig) -> int:
    """study.fuse as a number: itself, or for `auto` as many branches like `run`'s model as
    fit in memory (dlrun.fusion.rules.auto_fuse), at most AUTO_MAX."""
    if fuse != "auto":
        return int(fuse)
    import keras

    from dlrun.losses import resolved_name
    from dlrun.study.plan import bundle_for
    from dlrun.training import compile_model, make_datasets, prepare_devices

    bundle = bundle_for(run)
    prepare_devices(run)  # TensorFlow starts as a run starts it
    data = make_datasets(bundle, run, resolved_name(run, bundle.meta))
    model = compile_model(run, bundle.meta, data.steps_per_epoch)  # a throwaway, to size one branch
    size = branch_bytes(model, data.batch_size)
    del model, data
    keras.backend.clear_session()
    return auto_fuse(size, free_memory(), None)


Item = Tuple[RunConfig, Path, Dict[str, Any], str]  # a run, its folder, its registry tags, its name


def train_fused(items: Sequence[Item], bundle: Any) -> List[Union[Any, BaseException]]:
    """`dlrun.training.train` for each item, fitted together: per item its RunResult, or
    the exception that failed it alone (its build, or writing its results). Raises
    KeyboardInterrupt after every run wrote what it has (as `train` does), and the
    fused fit's own error, for the caller to train the runs one at a time."""
    import keras

    from dlrun.checkpoints import CheckpointError
    from dlrun.fusion.branches import BranchCallbacks, FusedBranches
    from dlrun.losses import resolved_name
    from dlrun.preflight import checked
    from dlrun.results import registry, rundir
    from dlrun.training import (finish_run, headline, make_datasets, prepare_devices, prepare_run,
                                steps_per_execution)

    started = time.perf_counter()
    first = items[0][0]
    bundle = checked(first, bundle)[0]
    prepare_devices(first)
    keras.backend.clear_session()
    data = make_datasets(bundle, first, resolved_name(first, bundle.meta))
    results: List[Any] = [None] * len(items)
    stacks: List[Optional[contextlib.ExitStack]] = [None] * len(items)
    entries: List[Any] = [None] * len(items)
    prepared: Dict[int, Any] = {}
    try:
        for i, (run, run_dir, tags, _) in enumerate(items):
            stack = stacks[i] = contextlib.ExitStack()
            run_dir = rundir.make_dir(Path(run_dir))
            stack.enter_context(rundir.run_lock(run_dir))
            entries[i] = stack.enter_context(registry.record(
                "train", run_dir, run.name, rundir.config_hash(dataclasses.asdict(run)), run.trainer.seed,
                refused=(CheckpointError,), tags=tags))
            try:
                keras.utils.set_random_seed(run.trainer.seed)  # as `train` seeds before it builds
                prepared[i] = prepare_run(run, run_dir, bundle, started, data=data, backups=False)
            except Exception as err:  # noqa: BLE001 - this run fails alone; the others train
                results[i] = err
                _close(stacks, i, err)
        members = sorted(prepared)
        status, reason, fit_time = "completed", None, 0.0
        if members:
            fused = FusedBranches([prepared[i].model for i in members], name="fused_runs")
            fused.prepare(steps_per_execution(first.trainer, data.steps_per_epoch))
            fit_started = time.perf_counter()
            try:
                fused.fit(data.train, validation_data=data.val, epochs=first.trainer.epochs, verbose=0,
                          shuffle=False, callbacks=[BranchCallbacks([prepared[i].callbacks for i in members])])
            except KeyboardInterrupt:
                status, reason = "interrupted", "stopped by the user (Ctrl-C)"
            fit_time = time.perf_counter() - fit_started
        interrupted = status == "interrupted"
        for i in members:
            others = [items[j][3] for j in members if j != i]
            try:
                result = finish_run(prepared[i], status, reason, {}, fit_time, extra={"fused_with": others})
            except KeyboardInterrupt as err:
                interrupted = True
                _close(stacks, i, err)
                continue
            except Exception as err:  # noqa: BLE001 - writing this run's results failed: it fails alone
                results[i] = err
                _close(stacks, i, err)
                continue
            results[i] = result
            entries[i].finish(result.status, headline(items[i][0], result), result.metrics.get("failure_reason"),
                              result.metrics.get("verdict"))
            _close(stacks, i, None)
        if interrupted:
            raise KeyboardInterrupt
        return results
    except BaseException as err:
        for i in range(len(stacks)):
            _close(stacks, i, err)
        raise


def _close(stacks: List[Optional[contextlib.ExitStack]], i: int, error: Optional[BaseException]) -> None:
    """End run i's lock and registry entry (with `error`: as that error ends them)."""
    stack, stacks[i] = stacks[i], None
    if stack is None:
        return
    if error is None:
        stack.close()
    else:
        stack.__exit__(type(error), error, error.__traceback__)
