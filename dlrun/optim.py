"""Optimizers and learning-rate schedules, by registry name. Config keys are
Keras's own argument names, so values pass straight through."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple

from dlrun.config.schema import RunConfig

# name -> (keras.optimizers class name, fixed keyword arguments)
OPTIMIZERS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {}),
    "nesterov": ("SGD", {"nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "nadam": ("Nadam", {}),
}


def optimizer_kwargs(cfg: Any) -> Dict[str, Any]:
    """The config's fields as keyword arguments (name dropped, unset clipping dropped)."""
    kwargs = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "name"}
    return {k: v for k, v in kwargs.items() if not (k in ("clipnorm", "clipvalue") and v is None)}


def learning_rate(run: RunConfig, steps_per_epoch: int) -> Any:
    """A float, or a keras LearningRateSchedule counting optimizer steps."""
    import keras

    lr, s, spe = run.optimizer.learning_rate, run.schedule, max(1, steps_per_epoch)
    if s.name in ("constant", "plateau"):
        return lr
    if s.name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=max(1, round(s.decay_epochs * spe)), decay_rate=s.decay_rate, staircase=s.staircase)
    if s.name == "step":
        values = [lr * s.factor ** i for i in range(len(s.boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay([int(b * spe) for b in s.boundaries], values)
    if s.name == "cosine":
        warmup = int(round(s.warmup_epochs * spe))
        decay_epochs = s.decay_epochs if s.decay_epochs is not None else run.trainer.epochs - s.warmup_epochs
        decay = max(1, int(round(decay_epochs * spe)))
        if warmup:
            return keras.optimizers.schedules.CosineDecay(0.0, decay, alpha=s.alpha, warmup_target=lr,
                                                          warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(lr, decay, alpha=s.alpha)
    raise ValueError(f"unknown schedule {s.name!r}")  # the schema rejects this earlier


def build_optimizer(run: RunConfig, steps_per_epoch: int) -> Any:
    """The keras optimizer for `run.optimizer`, with its schedule and clipping."""
    import keras

    class_name, fixed = OPTIMIZERS[run.optimizer.name]
    kwargs = {**optimizer_kwargs(run.optimizer), **fixed}
    kwargs["learning_rate"] = learning_rate(run, steps_per_epoch)
    return getattr(keras.optimizers, class_name)(**kwargs)


def schedule_callbacks(run: RunConfig) -> List[Any]:
    """Schedules that act between epochs (reduce on plateau)."""
    import keras

    s = run.schedule
    if s.name != "plateau":
        return []
    return [keras.callbacks.ReduceLROnPlateau(monitor=s.monitor, factor=s.factor, patience=s.patience,
                                              min_delta=s.min_delta, cooldown=s.cooldown, min_lr=s.min_lr,
                                              verbose=0)]
