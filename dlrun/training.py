"""Train one model from a validated config and write the run directory.

`compile_model` is the single build path: `train` and every search trial call it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import pandas as pd

from dlrun.config.schema import RunConfig, TrainerConfig
from dlrun.data import DataBundle, DataMeta
from dlrun.preflight import checked, metric_names
from dlrun.results import registry, rundir
from dlrun.runtime import import_tensorflow
from dlrun.results.plots import learning_curves
from dlrun.results.tables import write_table
from dlrun.checkpoints import (CheckpointError, backup_callback, check_resumable, keep_best_callbacks, kept_best,
                               monitor_mode)
from dlrun.diagnostics.session import record_diagnosis, watch
from dlrun.loggers import logger_callbacks

EVAL_BATCH = 2048  # batch size for evaluation: no gradients, so bigger is faster
EVAL_IMAGES_BATCH = 256  # ... but a folder's images are large: activations of 2,048 64x64 images take GBs


@dataclass
class Datasets:
    train: Any
    val: Any
    test: Any
    train_eval: Any
    batch_size: int
    steps_per_epoch: int


@dataclass
class RunResult:
    run_dir: Path
    status: str                        # completed | failed | interrupted
    metrics: Dict[str, Any]
    history: pd.DataFrame
    model: Any = None


def setup_runtime(trainer: TrainerConfig) -> Optional[str]:
    """Set up TensorFlow for a run: logical CPU devices (trainer.cpu_devices, before
    anything starts TensorFlow's runtime), threads, the dtype policy; seed Python, NumPy
    and Keras; optionally make TensorFlow ops deterministic. Returns a warning to show
    (mixed precision asked for where there is no GPU), or None."""
    from dlrun.distribute import configure_devices, set_precision

    tf = import_tensorflow()
    import keras

    configure_devices(trainer)
    if trainer.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(trainer.threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, trainer.threads)))
        except RuntimeError:
            pass  # TensorFlow already started in this process; its thread pools are fixed
    warning = set_precision(trainer)
    keras.utils.set_random_seed(trainer.seed)
    if trainer.deterministic:
        tf.config.experimental.enable_op_determinism()
    return warning


def targets(y: Any, meta: DataMeta, loss_name: str) -> Any:
    """Labels in the shape the loss expects."""
    import numpy as np

    if meta.task == "multiclass":
        if loss_name == "categorical_crossentropy":
            return np.eye(meta.n_outputs, dtype="float32")[y]
        return y.astype("int32")
    return y.astype("float32").reshape(-1, 1)


def pipeline_key(run: RunConfig, loss_name: str) -> Tuple:
    """What `make_datasets` builds from a run's config, for one prepared data: the batch
    size, the target format (the loss), the shuffle seed and the class weights. Runs with
    equal keys can read the same pipelines."""
    t = run.trainer
    return (t.batch_size, loss_name, t.seed, str(t.class_weight))


def make_datasets(bundle: DataBundle, run: RunConfig, loss_name: str) -> Datasets:
    """Cached, prefetched tf.data pipelines, built once from in-memory arrays (or, for a
    folder of images, from the files: see dlrun.image_pipeline). With
    trainer.class_weight, training rows carry their class's weight (validation and
    test rows do not: their metrics stay those of the data as it is)."""
    import numpy as np
    import tensorflow as tf

    from dlrun.classification import class_weights
    from dlrun.data.images import ImageFiles, cache_in_memory

    meta = bundle.meta
    n_train = len(bundle.x_train)
    batch = n_train if run.trainer.batch_size == "full" else int(run.trainer.batch_size)
    weights = class_weights(run.trainer.class_weight, meta.classes, bundle.y_train) if meta.task != "regression" \
        else None

    def pipeline(x: Any, y: Any, batch_size: int, shuffle: bool, weighted: bool = False, once: bool = False) -> Any:
        """`once`: read once, at the end (train_eval, test): an image folder's split is then not cached."""
        row_weights = None
        if weighted and weights is not None:
            row_weights = np.array([weights[int(c)] for c in range(len(meta.classes))], dtype="float32")[y]
        if isinstance(x, ImageFiles):
            from dlrun.image_pipeline import image_dataset

            return image_dataset(x, targets(y, meta, loss_name), row_weights, batch_size, shuffle=shuffle,
                                 seed=run.trainer.seed, cache=not once and cache_in_memory(run.data, x))
        parts = (x, targets(y, meta, loss_name)) + ((row_weights,) if row_weights is not None else ())
        ds = tf.data.Dataset.from_tensor_slices(parts).cache()
        if shuffle:
            ds = ds.shuffle(len(x), seed=run.trainer.seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    eval_batch = max(batch, EVAL_IMAGES_BATCH if isinstance(bundle.x_train, ImageFiles) else EVAL_BATCH)
    pipeline = _sharded(pipeline)
    return Datasets(train=pipeline(bundle.x_train, bundle.y_train, batch, shuffle=True, weighted=True),
                    val=pipeline(bundle.x_val, bundle.y_val, eval_batch, shuffle=False),
                    test=pipeline(bundle.x_test, bundle.y_test, eval_batch, shuffle=False, once=True),
                    train_eval=pipeline(bundle.x_train, bundle.y_train, eval_batch, shuffle=False, once=True),
                    batch_size=batch, steps_per_epoch=math.ceil(n_train / batch))


def _sharded(pipeline: Callable[..., Any]) -> Callable[..., Any]:
    """`pipeline` whose datasets a multi-worker strategy splits by rows (DATA sharding)."""
    from dlrun.distribute import sharded

    return lambda *args, **kwargs: sharded(pipeline(*args, **kwargs))


def build_metrics(run: RunConfig, meta: DataMeta, loss_name: str) -> List[Any]:
    import keras

    M = keras.metrics
    logits = loss_name == "hinge"
    cut = decision_threshold(run, loss_name)
    out = []
    for name in metric_names(run, meta.task):
        if name == "accuracy":
            if meta.task == "binary":
                out.append(M.BinaryAccuracy(name="accuracy", threshold=cut))
            elif loss_name == "categorical_crossentropy":
                out.append(M.CategoricalAccuracy(name="accuracy"))
            else:
                out.append(M.SparseCategoricalAccuracy(name="accuracy"))
        elif name == "top3_accuracy":
            cls = M.TopKCategoricalAccuracy if loss_name == "categorical_crossentropy" \
                else M.SparseTopKCategoricalAccuracy
            out.append(cls(k=3, name="top3_accuracy"))
        elif name == "auc":
            out.append(M.AUC(name="auc", from_logits=logits))
        elif name == "pr_auc":
            out.append(M.AUC(name="pr_auc", curve="PR", from_logits=logits))
        elif name == "precision":
            out.append(M.Precision(name="precision", thresholds=cut))
        elif name == "recall":
            out.append(M.Recall(name="recall", thresholds=cut))
        elif name == "f1":
            out.append(margin_f1() if logits else M.F1Score(name="f1", average="micro", threshold=cut))
        else:
            out.append({"mae": M.MeanAbsoluteError, "mse": M.MeanSquaredError,
                        "rmse": M.RootMeanSquaredError, "mape": M.MeanAbsolutePercentageError,
                        "r2": M.R2Score}[name](name=name))
    return out


def margin_f1() -> Any:
    """F1 of a hinge model, whose output is a margin (positive at >= 0): Keras's F1Score
    takes thresholds in (0, 1], so the margin goes through a sigmoid (>= 0.5 iff >= 0)."""
    import keras

    class MarginF1(keras.metrics.F1Score):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            return super().update_state(y_true, keras.ops.sigmoid(y_pred), sample_weight)

    return MarginF1(name="f1", average="micro", threshold=0.5)


def decision_threshold(run: RunConfig, loss_name: str) -> float:
    """The score at which a binary model's answer counts as positive during training:
    trainer.threshold (0.5 while 'auto' is still to be chosen); a hinge model's output
    is a margin, not a probability, so its threshold is 0."""
    if loss_name == "hinge":
        return 0.0
    return 0.5 if run.trainer.threshold == "auto" else float(run.trainer.threshold)


def steps_per_execution(trainer: TrainerConfig, steps_per_epoch: int) -> int:
    """'auto': run a whole epoch per call into TensorFlow (small data is dominated
    by per-step overhead; see benchmarks/)."""
    if trainer.steps_per_execution == "auto":
        return max(1, steps_per_epoch)
    return int(trainer.steps_per_execution)


def compile_model(run: RunConfig, meta: DataMeta, steps_per_epoch: int) -> Any:
    """Build and compile the model for `run`: the one build path for train and search
    (inside trainer.strategy's scope, so its variables live on every device)."""
    from dlrun.distribute import strategy_for
    from dlrun.models import build_model

    import_tensorflow()
    with strategy_for(run.trainer).scope():
        model = build_model(run, meta)
    return compile_built(model, run, meta, steps_per_epoch)


def compile_built(model: Any, run: RunConfig, meta: DataMeta, steps_per_epoch: int) -> Any:
    """Compile a built model with `run`'s optimizer, loss and metrics (also the second
    phase of fine-tuning, with that phase's config)."""
    from dlrun import distribute
    from dlrun.losses import build_loss, resolved_name
    from dlrun.optim import build_optimizer

    strategy = distribute.strategy_for(run.trainer)
    with strategy.scope():
        model.compile(optimizer=build_optimizer(run, steps_per_epoch), loss=build_loss(run, meta),
                      metrics=build_metrics(run, meta, resolved_name(run, meta)),
                      steps_per_execution=distribute.steps_per_execution(
                          strategy, steps_per_execution(run.trainer, steps_per_epoch)))
    return model


def epoch_recorder() -> Any:
    """A callback that keeps one row per epoch (metrics, learning rate, seconds) and
    stops training at once when the loss is NaN or infinite."""
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: List[Dict[str, Any]] = []
            self.diverged_epoch: Optional[int] = None
            self.phase: Optional[int] = None  # transfer learning: 1 (head), 2 (fine-tuning) in each row
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Optional[Dict] = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
            logs = dict(logs or {})
            row: Dict[str, Any] = {"epoch": epoch + 1}
            row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
            row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row["epoch_time_s"] = round(time.perf_counter() - self._start, 4)
            if self.phase is not None:
                row["phase"] = self.phase
            self.rows.append(row)
            if not math.isfinite(row.get("loss", 0.0)):
                self.diverged_epoch = epoch + 1
                self.model.stop_training = True

        def frame(self) -> pd.DataFrame:
            return pd.DataFrame(self.rows)

        def checkpoint_state(self) -> Dict[str, Any]:  # see dlrun.checkpoints: kept across a resume
            return {"rows": self.rows}

        def restore_checkpoint_state(self, state: Dict[str, Any]) -> None:
            self.rows = [dict(row) for row in state["rows"]]

    return EpochRecorder()


def fit_callbacks(run: RunConfig, recorder: Any, statistics: Optional[Any]) -> List[Any]:
    """The callbacks every fit of `run` has, in `train` and in each search trial: the
    epoch recorder, the diagnostics statistics (None: off), early stopping and a
    reduce-on-plateau schedule."""
    from dlrun.optim import schedule_callbacks
    from dlrun.regularization import callbacks as regularization_callbacks

    return [recorder, *([statistics] if statistics is not None else []),
            *regularization_callbacks(run.regularization), *schedule_callbacks(run)]


def evaluate(model: Any, data: Datasets) -> Dict[str, Dict[str, float]]:
    """Final metrics on every split, with the weights training ended with."""
    out = {}
    for split, ds in (("train", data.train_eval), ("val", data.val), ("test", data.test)):
        values = model.evaluate(ds, verbose=0, return_dict=True)
        out[split] = {k: float(v) for k, v in values.items()}
    return out


def write_run_info(run_dir: Path, run: RunConfig) -> Dict[str, Any]:
    """The resolved config, the command line and the versions, before training starts."""
    from omegaconf import OmegaConf

    config = dataclasses.asdict(run)
    rundir.write_text(run_dir / "config.yaml", "# The resolved config of this run (every default filled in).\n"
                      + OmegaConf.to_yaml(OmegaConf.create(config)))
    rundir.write_text(run_dir / "command.txt", rundir.command_line() + "\n")
    info = {"versions": rundir.versions(), "git": rundir.git_state(), "config_hash": rundir.config_hash(config),
            "seed": run.trainer.seed}
    rundir.write_json(run_dir / "versions.json", info)
    return info


def train(run: RunConfig, run_dir: Union[str, Path, None] = None, bundle: Optional[DataBundle] = None,
          tags: Optional[Dict[str, Any]] = None) -> RunResult:
    """Train `run`, writing the results contract into `run_dir`
    (default experiments/<name>/<timestamp>/). `bundle`: the data already prepared for
    `run.data` (a study's runs share it); `tags`: kept in the run's registry entry."""
    started = time.perf_counter()
    bundle = checked(run, bundle)[0]
    prepare_devices(run)  # refuses a batch size the devices cannot share before anything is written
    if not is_chief(run):  # a multi-worker run's other workers train alongside; the chief writes the results
        return _train_worker(run, bundle, started)
    run_dir = rundir.make_dir(Path(run_dir) if run_dir is not None else rundir.default_run_dir(run.name))
    config_hash = rundir.config_hash(dataclasses.asdict(run))
    with rundir.run_lock(run_dir), registry.record("train", run_dir, run.name, config_hash, run.trainer.seed,
                                                   refused=(CheckpointError,), tags=tags) as entry:
        result = _train_locked(run, run_dir, bundle, started)
        entry.finish(result.status, headline(run, result), result.metrics.get("failure_reason"),
                     result.metrics.get("verdict"))
        return result


def prepare_devices(run: RunConfig) -> None:
    """Start TensorFlow for `run` (devices, dtype policy, seeds) and make its strategy
    (a multi-worker one must come before TensorFlow runs anything). The batch size was
    checked against the replicas with the data (preflight.checked). Raises ConfigError."""
    from dlrun.display import warn
    from dlrun.distribute import strategy_for

    warning = setup_runtime(run.trainer)
    if warning:
        warn(warning)
    strategy_for(run.trainer)


def is_chief(run: RunConfig) -> bool:
    """Whether this process writes the run's results: always, but for the workers of a
    multi-worker run other than the chief."""
    from dlrun.distribute import is_chief as chief

    return run.trainer.strategy != "multi_worker" or chief()


def _train_worker(run: RunConfig, bundle: DataBundle, started: float) -> RunResult:
    """A non-chief worker of trainer.strategy=multi_worker: the same steps as the chief
    (collective operations need every worker), its files in a folder deleted afterwards."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="dlrun-worker-"))
    try:
        return _train_locked(run, scratch, bundle, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def headline(run: RunConfig, result: RunResult) -> Optional[Tuple[str, Any]]:
    """The run's headline metric for the registry: the first compiled metric on test."""
    name = metric_names(run, result.metrics.get("data", {}).get("task", ""))[0]
    value = result.metrics.get("test", {}).get(name)
    return (f"test_{name}", value) if value is not None else None


def _train_locked(run: RunConfig, run_dir: Path, bundle: DataBundle, started: float) -> RunResult:
    prepared = prepare_run(run, run_dir, bundle, started)
    return finish_run(prepared, *fit_run(prepared))


@dataclass
class PreparedRun:
    """One run ready to fit: what `prepare_run` built before the fit and `finish_run`
    needs after it (split so that a study can fit several runs as one graph)."""
    run: RunConfig
    run_dir: Path
    bundle: DataBundle
    started: float
    info: Dict[str, Any]
    loss_name: str
    data: Datasets
    model: Any
    recorder: Any
    statistics: Any
    title: str
    callbacks: List[Any]
    backup: Any


def prepare_run(run: RunConfig, run_dir: Path, bundle: DataBundle, started: float, data: Optional[Datasets] = None,
                backups: bool = True) -> PreparedRun:
    """Write the run's info, build and compile its model and make its callbacks.
    `data`: the pipelines, when a caller made them for several runs; `backups=False`: no
    training-state backup (a fused group is trained again from the start if stopped)."""
    resume = check_resumable(run, run_dir)  # a checkpoint of another config is refused before anything is written
    info = write_run_info(run_dir, run)

    from dlrun.display import make_progress_callback
    from dlrun.losses import resolved_name

    loss_name = resolved_name(run, bundle.meta)
    data = data if data is not None else make_datasets(bundle, run, loss_name)
    model = compile_model(run, bundle.meta, data.steps_per_epoch)
    write_augmentation_examples(run, model, bundle, run_dir)
    recorder = epoch_recorder()
    statistics = watch(run, model, bundle, loss_name)
    title = f"{run.name}: {run.model.name} {run.optimizer.name}"
    callbacks = [*fit_callbacks(run, recorder, statistics), *keep_best_callbacks(run),
                 *logger_callbacks(run, run_dir, statistics),
                 make_progress_callback(run.trainer.epochs, title, enabled=run.trainer.verbose == 1)]
    backup = None
    if backups:  # last: restores after the others reset, saves after they update;
        # `dataset`: a resumed run continues its shuffle order
        backup = backup_callback(run, run_dir, callbacks, data.train, resume)
        callbacks += [backup] if backup is not None else []
    return PreparedRun(run, run_dir, bundle, started, info, loss_name, data, model, recorder, statistics, title,
                       callbacks, backup)


def fit_run(p: PreparedRun) -> Tuple[str, Optional[str], Dict[str, Any], float]:
    """Fit one prepared run (both phases of a fine-tuned transfer model). Returns the
    status, its reason, what metrics.json records about the phases and the fit's seconds."""
    from dlrun.display import make_progress_callback
    from dlrun.finetune import fit_phases, second_phase_config

    run = p.run

    def callbacks_for(phase: int, epochs: int) -> List[Any]:
        """Phase 2 (fine-tuning) gets fresh callbacks at its own learning rate; the training-state
        backup covers the first phase, and the diagnostics statistics watch the first phase's weights."""
        if phase == 1:
            return p.callbacks
        tuned = second_phase_config(run)
        return [*fit_callbacks(tuned, p.recorder, None), *keep_best_callbacks(tuned),
                *logger_callbacks(tuned, p.run_dir, None),
                make_progress_callback(epochs, f"{p.title} (fine-tuning)", enabled=run.trainer.verbose == 1)]

    status, reason = "completed", None
    phases: Dict[str, Any] = {}
    fit_started = time.perf_counter()
    try:
        phases = fit_phases(run, p.model, p.bundle.meta, p.data, p.recorder, callbacks_for, shuffle=False,
                            verbose=2 if run.trainer.verbose == 2 else 0)
    except KeyboardInterrupt:
        status, reason = "interrupted", "stopped by the user (Ctrl-C)"
    return status, reason, phases, time.perf_counter() - fit_started


def finish_run(p: PreparedRun, status: str, reason: Optional[str], phases: Dict[str, Any],
               fit_time: float, extra: Optional[Dict[str, Any]] = None) -> RunResult:
    """Evaluate the fitted run and write its results: history, curves, model, threshold,
    diagnosis and metrics.json (with `extra`'s entries). Raises KeyboardInterrupt (after
    writing) when the run was stopped."""
    run, run_dir, bundle, model, history = p.run, p.run_dir, p.bundle, p.model, p.recorder.frame()
    if p.recorder.diverged_epoch is not None:
        status, reason = "failed", f"loss became NaN/inf at epoch {p.recorder.diverged_epoch}"

    final: Dict[str, Dict[str, float]] = {}
    threshold: Optional[Dict[str, Any]] = None
    try:
        if status != "interrupted":
            final = evaluate(model, p.data)
            threshold = choose_threshold(run, model, bundle, final, p.loss_name)
        if not history.empty:
            write_table(history, run_dir / "history")
            learning_curves(history, run_dir / "learning_curves.png", title=p.title)
        if run.trainer.save_model and status == "completed":
            save_model(model, run_dir / "model.keras")
            save_preprocessing(run_dir, run, bundle, threshold)
        if status == "completed" and run.model.name == "attention":
            try:  # attention.png: the first test examples' attention weights, head by head
                from dlrun.attention_maps import write_attention_maps

                write_attention_maps(run, model, bundle, run_dir, threshold=(threshold or {}).get("value"))
            except Exception as err:  # noqa: BLE001 - a picture must never fail the run it describes
                from dlrun.display import warn
                from dlrun.errors import first_line

                warn(f"no attention.png: {first_line(err)}")
    except KeyboardInterrupt:  # after training: still leave the history and a metrics.json that says so
        status, reason = "interrupted", "stopped by the user (Ctrl-C) while the run's results were written"
        if not history.empty and not (run_dir / "history.csv").exists():
            write_table(history, run_dir / "history")
    metrics = _summary(run, bundle, history, final, status, reason, fit_time, p.started, model, p.info)
    if p.backup is not None and p.backup.resumed_epoch:
        metrics["resumed_from_epoch"] = p.backup.resumed_epoch
    metrics.update(kept_best(p.callbacks))
    metrics.update(phases)
    metrics.update(device_summary(run, model))
    if p.statistics is not None and status != "interrupted":
        metrics.update(record_diagnosis(run, bundle, p.statistics, history, metrics, run_dir, p.title))
    if threshold is not None:
        metrics["threshold"] = threshold
    if final.get("test"):
        metrics["baseline"] = baseline(bundle)
    metrics.update(extra or {})
    metrics["wall_time_s"] = round(time.perf_counter() - p.started, 3)
    rundir.write_json(run_dir / "metrics.json", metrics)
    if status == "interrupted":
        raise KeyboardInterrupt
    return RunResult(run_dir=run_dir, status=status, metrics=metrics, history=history, model=model)


def scores_of(model: Any, x: Any) -> Any:
    """The model's outputs for the rows `x` (an array, or a split of an image folder),
    as one NumPy array (no progress bar)."""
    from dlrun.data.images import ImageFiles

    if isinstance(x, ImageFiles):
        import numpy as np

        from dlrun.image_pipeline import image_dataset

        dataset = image_dataset(x, np.zeros(len(x), "float32"), None, EVAL_IMAGES_BATCH, shuffle=False, seed=0,
                                cache=False)
        return model.predict(dataset.map(lambda images, _: images), verbose=0)
    return model.predict(x, batch_size=EVAL_BATCH, verbose=0)


def write_augmentation_examples(run: RunConfig, model: Any, bundle: DataBundle, run_dir: Path) -> None:
    """augmentation_examples.png: training images as the model's augmentation block
    changes them (the block inside the model: what training really sees)."""
    aug = run.augmentation
    if not aug.active or not aug.examples:
        return
    import numpy as np

    from dlrun.results.augmentation_plot import augmentation_examples

    count = min(aug.examples, len(bundle.x_train))
    images = np.asarray(bundle.x_train[:count], dtype="float32")
    labels = [str(bundle.meta.classes[int(c)]) if bundle.meta.classes else f"{float(c):.4g}"
              for c in bundle.y_train[:count]]
    augmentation_examples(images, labels, model.get_layer("augmentation"), run_dir / "augmentation_examples.png")


def device_summary(run: RunConfig, model: Any) -> Dict[str, Any]:
    """What metrics.json records about where and how the run trained: the strategy, its
    devices and the dtype policy; for a transfer model, the backbone's parameters."""
    from dlrun.distribute import describe, strategy_for

    out: Dict[str, Any] = {"devices": describe(strategy_for(run.trainer))}
    if run.model.name == "transfer":
        from dlrun.models.transfer import backbone_summary

        out["backbone"] = {"name": run.model.backbone, "weights": run.model.weights, **backbone_summary(model)}
    return out


def choose_threshold(run: RunConfig, model: Any, bundle: DataBundle, final: Dict[str, Dict[str, float]],
                     loss_name: str) -> Optional[Dict[str, Any]]:
    """A binary model's decision threshold: trainer.threshold, or with 'auto' the one
    with the best F1 on the validation split. With 'auto', the threshold-dependent
    metrics of every split in `final` are recomputed at the chosen threshold."""
    from dlrun.classification import best_threshold, threshold_scores

    if bundle.meta.task != "binary":
        return None
    if run.trainer.threshold != "auto":
        return {"value": decision_threshold(run, loss_name), "chosen_by": "trainer.threshold"}
    splits = {"train": (bundle.x_train, bundle.y_train), "val": (bundle.x_val, bundle.y_val),
              "test": (bundle.x_test, bundle.y_test)}
    scores = {split: scores_of(model, x) for split, (x, _) in splits.items()}
    value = best_threshold(bundle.y_val, scores["val"])
    names = set(metric_names(run, "binary")) & {"accuracy", "precision", "recall", "f1"}
    for split, (_, y) in splits.items():
        if split in final:
            final[split].update({k: v for k, v in threshold_scores(y, scores[split], value).items() if k in names})
    return {"value": value, "chosen_by": "auto: the best F1 on the validation split"}


def baseline(bundle: DataBundle) -> Dict[str, Any]:
    """What a model that ignores the features scores on the test split."""
    from dlrun.classification import majority_baseline, mean_baseline

    b = bundle
    if b.meta.task == "regression":
        return mean_baseline(b.y_train, b.y_test)
    out = majority_baseline(b.y_train, b.y_test, b.meta.classes)
    return {**out, "majority_class": str(out["majority_class"])}


def save_model(model: Any, path: Path) -> None:
    """Save the model for inference: layers and weights without the training set-up
    (loss, metrics, optimizer): `dlrun.predict.load_model` loads it (plain `keras.models.load_model`
    too, except for the sequence models, whose layers dlrun.models.sequence_layers registers)."""
    import keras

    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    with rundir.atomic_path(path) as tmp:
        inference.save(tmp)


def save_preprocessing(run_dir: Path, run: RunConfig, bundle: DataBundle,
                       threshold: Optional[Dict[str, Any]]) -> None:
    """What `dlrun predict` needs besides the model (see dlrun.data.saved): with no
    chosen threshold, a binary model's is trainer.threshold's."""
    from dlrun.data.saved import save
    from dlrun.losses import resolved_name

    loss_name = resolved_name(run, bundle.meta)
    value = threshold["value"] if threshold else None
    if value is None and bundle.meta.task == "binary":
        value = decision_threshold(run, loss_name)
    save(run_dir, run.data, bundle, value, output="margin" if loss_name == "hinge" else "probability")


def _summary(run: RunConfig, bundle: DataBundle, history: pd.DataFrame, final: Dict, status: str,
             reason: Optional[str], fit_time: float, started: float, model: Any, info: Dict) -> Dict[str, Any]:
    monitor = (run.regularization.early_stopping.monitor if run.regularization.early_stopping else "val_loss")
    best_epoch = None
    if not history.empty and monitor in history and history[monitor].notna().any():
        col = history[monitor]
        best_epoch = int(history["epoch"][col.idxmax() if monitor_mode(monitor) == "max" else col.idxmin()])
    meta = bundle.meta
    return {
        "status": status,
        "failure_reason": reason,
        "train": final.get("train", {}),
        "val": final.get("val", {}),
        "test": final.get("test", {}),
        "epochs_run": int(len(history)),
        "best_epoch": best_epoch,
        "fit_time_s": round(fit_time, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "params": int(model.count_params()),
        "seed": run.trainer.seed,
        "config_hash": info["config_hash"],
        "data": {"task": meta.task, "rows": meta.rows, "n_features": len(meta.feature_names),
                 "classes": [str(c) for c in meta.classes], **meta.report},
    }


def refit(run: RunConfig, bundle: DataBundle, epochs: int) -> Tuple[Any, Dict[str, Dict[str, float]]]:
    """Train `run` on train+validation for a fixed number of epochs (the best epoch
    found on validation) and score it on the held-out test split. Early stopping
    and reduce-on-plateau need a validation split, so they are left out here."""
    import numpy as np

    from dlrun.data.images import concat_rows
    from dlrun.finetune import fit_phases
    from dlrun.losses import resolved_name

    setup_runtime(run.trainer)
    full = DataBundle(concat_rows(bundle.x_train, bundle.x_val), np.concatenate([bundle.y_train, bundle.y_val]),
                      bundle.x_test, bundle.y_test, bundle.x_test, bundle.y_test, bundle.meta)
    data = make_datasets(full, run, resolved_name(run, bundle.meta))
    model = compile_model(run, bundle.meta, data.steps_per_epoch)
    recorder = epoch_recorder()  # fit_phases reads it: a diverged or empty first phase has no second
    fit_phases(run, model, bundle.meta, data, recorder, lambda phase, total: [recorder],
               epochs=max(1, int(epochs)), verbose=0, shuffle=False)
    scores = {}
    for split, ds in (("train", data.train_eval), ("test", data.test)):
        scores[split] = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    return model, scores
