"""Checks that need the data but not TensorFlow: they run in the CLI before a
run directory exists, so bad input never leaves a half-written result behind."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

from dlrun.config.schema import (BINARY_LOSSES, IMAGE_MODELS, METRICS_BY_TASK, MULTICLASS_LOSSES, REGRESSION_LOSSES,
                                 SEQUENCE_MODELS, RunConfig, nearest_divisor)
from dlrun.errors import ConfigError, one_of

if TYPE_CHECKING:
    from dlrun.data import DataBundle

LOSSES_BY_TASK = {
    "regression": REGRESSION_LOSSES,
    "binary": BINARY_LOSSES,
    "multiclass": MULTICLASS_LOSSES,
}


def uses_images(run: RunConfig) -> bool:
    """Whether the model reads images (data shaped [height, width, channels]): image models,
    and sequence models without a text column (an image read row by row or patch by patch)."""
    return run.model.name in IMAGE_MODELS or (run.model.name in SEQUENCE_MODELS and run.data.text is None)


def check_transfer(run: RunConfig, bundle: "DataBundle") -> None:
    """model=transfer: the backbone's smallest input against the images' size, and its
    weights (ImageNet: cached or downloaded now; a file: there)."""
    if run.model.name != "transfer":
        return
    from dlrun.models.transfer_checks import check_input_size, check_weights

    height, width = bundle.meta.input_shape[:2]
    check_input_size(run.model, height, width)
    check_weights(run.model)


def check_patches(run: RunConfig, bundle: "DataBundle") -> None:
    """A sequence model reading images patch by patch: the patches must tile the image."""
    patch = getattr(run.model, "patch_size", None)
    if run.model.name not in SEQUENCE_MODELS or patch is None or bundle.meta.text is not None:
        return
    height, width = bundle.meta.input_shape[:2]
    if height % patch[0] or width % patch[1]:
        raise ConfigError("model.patch_size", list(patch), f"does not tile the {height}x{width} images; "
                          f"use divisors of the size, e.g. [{nearest_divisor(height, patch[0])}, {nearest_divisor(width, patch[1])}] "
                          "(or null: one token per row)")


def check_loss_fits(run: RunConfig, task: str) -> None:
    name = run.loss.name
    if name == "auto":
        return
    if name == "custom":
        if run.loss.task not in (None, task):
            raise ConfigError("loss.task", run.loss.task, f"the data's task is {task}")
        return
    allowed = LOSSES_BY_TASK[task]
    if name not in allowed:
        raise ConfigError("loss", name, f"does not fit a {task} task; use one of auto, {', '.join(allowed)}")


def check_metrics(run: RunConfig, task: str) -> None:
    allowed = METRICS_BY_TASK[task]
    for name in run.trainer.metrics:
        if name != "auto" and name not in allowed:
            raise ConfigError("trainer.metrics", name, f"not a {task} metric; use auto or "
                              + one_of(name, allowed))


def metric_names(run: RunConfig, task: str) -> List[str]:
    """The compiled metrics' names, in order ('auto' resolved by task); loss not included."""
    names = list(run.trainer.metrics)
    if "auto" in names:
        at = names.index("auto")
        names[at:at + 1] = AUTO_METRICS.get(task, ["accuracy"])
    return list(dict.fromkeys(names))


# trainer.metrics=[auto]: what each task reports (a binary task is often imbalanced,
# where accuracy alone says little: AUC, PR-AUC, precision, recall and F1 of the positive class)
AUTO_METRICS = {"regression": ["mae"], "multiclass": ["accuracy"],
                "binary": ["accuracy", "auc", "pr_auc", "precision", "recall", "f1"]}
SPLITS = ("train", "val", "test")  # the splits every run is scored on (metrics.json)


def optimized_names(run: RunConfig, task: str) -> List[str]:
    """What optimized_metric may name: <split>_<loss or a compiled metric>."""
    return [f"{split}_{name}" for split in SPLITS for name in ["loss", *metric_names(run, task)]]


def check_produced(key: str, name: str, allowed: List[str]) -> None:
    """A metric name that a setting refers to (optimized_metric, search.objective) must be
    one the model produces; a typo gets a suggestion."""
    if name not in allowed:
        raise ConfigError(key, name, "is never produced by this model; " + one_of(name, allowed)
                          + " (add metrics with trainer.metrics=[...])")


def check_optimized_metric(run: RunConfig, task: str) -> None:
    check_produced("optimized_metric", run.optimized_metric, optimized_names(run, task))


def check_classes(run: RunConfig, bundle: "DataBundle") -> None:
    """trainer.class_weight and trainer.threshold against the data's task and labels."""
    meta, trainer = bundle.meta, run.trainer
    if trainer.class_weight != "none" and meta.task == "regression":
        raise ConfigError("trainer.class_weight", trainer.class_weight, "weights classes; this target is numeric "
                          "(regression). Set trainer.class_weight=none")
    if isinstance(trainer.class_weight, dict):
        from dlrun.classification import class_weight_codes

        class_weight_codes(trainer.class_weight, meta.classes)
    if trainer.threshold != 0.5 and meta.task != "binary":
        raise ConfigError("trainer.threshold", trainer.threshold, f"applies to binary tasks; this one is {meta.task}")


def check_trainer(run: RunConfig, bundle: "DataBundle") -> List[str]:
    n_train = bundle.meta.rows["train"]
    bs = run.trainer.batch_size
    if bs != "full" and bs > n_train:
        raise ConfigError("trainer.batch_size", bs, f"larger than the training split ({n_train} rows); "
                          "use a smaller value or 'full'")
    notes = []
    es = run.regularization.early_stopping
    if es is not None and es.patience >= run.trainer.epochs:
        notes.append(f"regularization.early_stopping.patience={es.patience} >= trainer.epochs="
                     f"{run.trainer.epochs}: early stopping cannot trigger")
    return notes


def prepared(run: RunConfig) -> "DataBundle":
    """Load and prepare the data that `run` names. Raises DataError."""
    if run.data.name == "csv" and run.data.path:
        from dlrun.data.paths import check_table_path

        check_table_path(run.data.path)  # before pandas is imported: a typo answers at once
    from dlrun.data import build_data

    return build_data(run.data, image=uses_images(run))


def preflight(run: RunConfig) -> "DataBundle":
    """Load and prepare the data, then check what depends on it. Raises DataError/ConfigError."""
    return checked(run)[0]


def checked(run: RunConfig, bundle: Optional["DataBundle"] = None) -> Tuple["DataBundle", List[str]]:
    """The prepared data (`bundle` when the caller prepared it already: runs of a study
    share it) and warnings worth showing (values that are allowed but probably not
    what was meant). Raises DataError/ConfigError."""
    if bundle is None:
        bundle = prepared(run)
    check_loss_fits(run, bundle.meta.task)
    check_metrics(run, bundle.meta.task)
    check_optimized_metric(run, bundle.meta.task)
    check_classes(run, bundle)
    check_transfer(run, bundle)
    check_patches(run, bundle)
    from dlrun.diagnostics.static import static_warnings
    from dlrun.distribute import check_batch, check_config, planned_replicas

    check_config(run.trainer)
    check_batch(run.trainer, planned_replicas(run.trainer))  # imports TensorFlow only for a strategy

    return bundle, [*bundle.meta.notes, *check_trainer(run, bundle), *static_warnings(run, bundle.meta, bundle.x_train)]
