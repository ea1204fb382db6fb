"""Several compiled Keras models (one per search trial) trained as one model: one `fit`,
one tf.data pipeline, one call into TensorFlow per `steps_per_execution` (issue #15).

Small models on a CPU spend most of each step in Keras's and TensorFlow's per-step
overhead, not in arithmetic; K branches in one graph pay that overhead once (HFTA, Wang
et al., MLSys 2021, fuses PyTorch models the same way). Each branch stays the model its
own config built (`compile_model`, the one build path) and steps through its own Keras
`train_step`: its own optimizer and learning-rate schedule, loss, metrics,
regularization, dropout and batch norm.

A branch stops being *active* when its own callbacks stop it (early stopping, or the
epoch recorder on a NaN loss: see `BranchCallbacks`) or when its loss turns NaN/inf
inside an epoch (it is then *failed*). An inactive branch is skipped inside the step: no
forward pass, no update, so its weights and optimizer state stay as they were. The fit
ends when no branch is active or the epochs run out. The fused logs carry each branch's
metrics as `b<k>/<name>` (`val_b<k>/<name>` for validation); `branch_logs` reads one
branch's back under their plain names."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import keras

PREFIX = "b{}/"


def branch_key(k: int, name: str) -> str:
    return PREFIX.format(k) + name


def branch_logs(logs: Optional[Dict[str, Any]], k: int) -> Dict[str, float]:
    """Branch k's entries of a fused log, under their plain names (loss, val_loss, ...)."""
    out: Dict[str, float] = {}
    mine, val = PREFIX.format(k), "val_" + PREFIX.format(k)
    for key, value in (logs or {}).items():
        if key.startswith(val):
            out["val_" + key[len(val):]] = float(value)
        elif key.startswith(mine):
            out[key[len(mine):]] = float(value)
    return out


class FusedBranches(keras.Model):
    """K compiled models trained side by side on the same batches."""

    def __init__(self, branches: Sequence[keras.Model], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not branches:
            raise ValueError("FusedBranches needs at least one model")
        self.branches = list(branches)
        self.active = [keras.Variable(True, dtype="bool", trainable=False, name=f"active_{k}")
                       for k in range(len(self.branches))]
        self.failed = [keras.Variable(False, dtype="bool", trainable=False, name=f"failed_{k}")
                       for k in range(len(self.branches))]

    def prepare(self, steps_per_execution: int = 1) -> "FusedBranches":
        """Build every branch's optimizer variables now (a variable cannot be created inside
        the conditional update of a traced step), then compile the fused model itself."""
        for model in self.branches:
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self.compile(steps_per_execution=steps_per_execution)
        return self

    @property
    def metrics(self) -> List[Any]:
        """Every branch's metrics and loss tracker: Keras resets these at each epoch and
        before validation."""
        return [m for model in self.branches for m in model.metrics]

    def call(self, x: Any, training: bool = False) -> List[Any]:
        return [model(x, training=training) for model in self.branches]

    def train_step(self, data: Any) -> Dict[str, Any]:
        import tensorflow as tf

        for k, model in enumerate(self.branches):
            def step(model: keras.Model = model, k: int = k) -> Any:
                loss = model.train_step(data)["loss"]  # the branch's own step: its loss, optimizer, metrics
                finite = tf.math.is_finite(loss)
                self.failed[k].assign(tf.logical_or(self.failed[k], tf.logical_not(finite)))
                self.active[k].assign(tf.logical_and(self.active[k], finite))
                return finite

            tf.cond(self.active[k], step, lambda: tf.constant(False))
        return self._logs()

    def test_step(self, data: Any) -> Dict[str, Any]:
        """Every branch's own test_step, without the condition: validation changes no
        weights, an inactive branch's logs are not read, and a conditional per branch
        costs more tracing and per-step time than the evaluation it would skip."""
        for model in self.branches:
            model.test_step(data)
        return self._logs()

    def _logs(self) -> Dict[str, Any]:
        logs: Dict[str, Any] = {}
        for k, model in enumerate(self.branches):
            for name, value in model.get_metrics_result().items():
                logs[branch_key(k, name)] = value
        return logs

    def is_active(self, k: int) -> bool:
        return bool(keras.ops.convert_to_numpy(self.active[k]))

    def has_failed(self, k: int) -> bool:
        return bool(keras.ops.convert_to_numpy(self.failed[k]))

    def freeze(self, k: int) -> None:
        self.active[k].assign(False)


class BranchCallbacks(keras.callbacks.Callback):
    """Each branch's own Keras callbacks (the same ones an unfused trial gets: epoch
    recorder, early stopping, reduce-on-plateau, diagnostics, loggers), each set on its
    branch's model and fed that branch's logs. When a callback stops its branch
    (`stop_training`, as EarlyStopping and the recorder's NaN guard do) the branch is frozen
    and gets no more epoch events; the fused fit stops when every branch has. A branch that
    failed inside an epoch gets a NaN loss in its logs, so that its recorder fails it as an
    unfused fit would. `on_train_end` reaches every branch's callbacks once, at the end (it
    restores early stopping's best weights; a frozen branch's weights did not change since)."""

    def __init__(self, callbacks: Sequence[Sequence[Any]]) -> None:
        super().__init__()
        self.per_branch = [list(c) for c in callbacks]
        self.done = [False] * len(self.per_branch)

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for branch, callbacks in zip(model.branches, self.per_branch):
            for callback in callbacks:
                callback.set_model(branch)

    def _each(self, method: str, *args: Any, logs: Any = None, only_active: bool = True) -> None:
        for k, callbacks in enumerate(self.per_branch):
            if only_active and self.done[k]:
                continue
            for callback in callbacks:
                getattr(callback, method)(*args, logs=logs)

    def on_train_begin(self, logs: Optional[Dict] = None) -> None:
        for branch in self.model.branches:
            branch.stop_training = False
        self._each("on_train_begin")

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict] = None) -> None:
        self._each("on_epoch_begin", epoch)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        fused: FusedBranches = self.model
        for k, (branch, callbacks) in enumerate(zip(fused.branches, self.per_branch)):
            if self.done[k]:
                continue
            mine = branch_logs(logs, k)
            if fused.has_failed(k):
                mine["loss"] = float("nan")
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs=mine)
            if branch.stop_training or not fused.is_active(k):  # stopped by its callbacks, or failed
                self.done[k] = True
                fused.freeze(k)
        if all(self.done):
            fused.stop_training = True

    def on_train_end(self, logs: Optional[Dict] = None) -> None:
        self._each("on_train_end", only_active=False)
