"""Verdict rules: pure functions of the per-epoch gradient statistics (statistics.py's
frame), the history and a few facts about the run. One rule a function; `RULES` lists
them in order of severity, and the first that finds a problem names the verdict.

Thresholds come from `diagnostics.rules` (DiagnosisRules in dlrun/config/schema.py):
AUTOTRAINER's published ones (Zhang et al., ICSE 2021: first/last-layer gradient-norm
ratio < 1e-3 vanishing, > 70 or NaN exploding, >= 70% dead ReLU units, judged from 30%
of the epochs on) where there are ones; the rest were set on benchmarks/diagnostics_cases/,
where their precision and recall are measured (benchmarks/RESULTS.md).

Every finding says what was seen, in numbers, layers and epochs a student can check in
gradients.csv and history.csv, and which overrides to try, first the likeliest fix.
No TensorFlow here: the rules are tested on constructed numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import DiagnosisRules

OK = "ok"
VERDICTS = ("diverged", "exploding_gradients", "vanishing_gradients", "dead_units", "saturated_units",
            "unstable", "underfitting", "overfitting")  # most severe first
SATURATING = ("sigmoid", "tanh")
DEAD_CAN_HAPPEN = ("relu",)
STILL_RISING = 0.1  # still improving: its last quarter of epochs gained at least this share of the total gain
SMALL_STEPS = 1e-3   # weights changing by less than this fraction per epoch: steps too small to learn
SPIKE_FACTOR = 2.0   # unstable: a loss at least this many times its lowest value so far is a jump back up
MAX_STEP = 0.5       # suggested clipping bounds a step (learning rate x clipnorm) to this length: clipnorm=1.0
                     # does not rescue SGD at learning rate 5 (steps of 5), clipnorm=0.1 does (diagnostics_cases)


@dataclass(frozen=True)
class Finding:
    """One problem, the numbers that show it, and what to change."""
    problem: str
    evidence: str
    suggestion: str
    overrides: Tuple[Tuple[str, ...], ...] = ()  # alternatives to try, the likeliest fix first

    def as_dict(self) -> Dict[str, object]:
        return {"problem": self.problem, "evidence": self.evidence, "suggestion": self.suggestion,
                "overrides": [list(o) for o in self.overrides]}


@dataclass(frozen=True)
class RunFacts:
    """What the rules know about the run besides its numbers (made by session.run_facts)."""
    task: str = "multiclass"
    metric: Optional[str] = None       # the metric judged for progress, e.g. accuracy, auc, mae
    higher_is_better: bool = True
    chance: Optional[float] = None     # its validation value when guessing (majority class, mean, 0.5 AUC)
    perfect: float = 1.0
    activation: str = "relu"
    initializer: str = "he_uniform"
    model: str = "mlp"
    units: Tuple[int, ...] = ()
    learning_rate: float = 0.01
    clipnorm: Optional[float] = None
    batch_size: object = 32
    train_rows: int = 0
    regularization: Tuple[str, ...] = ()  # sections present: kernel, dropout, batchnorm, noise, early_stopping
    restored_best: bool = False        # the run ended on its best epoch's weights (early stopping or keep_best)
    probe_rows: int = 0                # rows of the fixed batch the statistics were measured on


@dataclass
class Diagnosis:
    verdict: str
    findings: List[Finding] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        return {"verdict": self.verdict, "findings": [f.as_dict() for f in self.findings]}


Rule = Callable[[pd.DataFrame, pd.DataFrame, RunFacts, DiagnosisRules], Optional[Finding]]


def severity(verdict: Optional[str]) -> int:
    """A verdict's place in VERDICTS: lower is worse; ok (and anything unknown) is best."""
    return VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS)


# ------------------------------------------------------------------ helpers
def fmt(value: float) -> str:
    """A number as a student reads it: 0.27, 13.2, 2.1e-05."""
    if value is None or not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2g}"
    return f"{value:.3g}"


def pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _lr(facts: RunFacts, factor: float) -> str:
    return f"optimizer.learning_rate={float(f'{facts.learning_rate * factor:.2g}'):g}"


def _clip(facts: RunFacts) -> str:
    """A clipnorm that bounds every step (learning rate x clipnorm) to MAX_STEP."""
    value = 1.0 if facts.learning_rate <= MAX_STEP else float(f"{MAX_STEP / facts.learning_rate:.1g}")
    return f"optimizer.clipnorm={value:g}"


def _with_sections(facts: RunFacts, *sections: str) -> str:
    """A regularization override that keeps what the run had and adds `sections`."""
    names = {"kernel": "l2"}  # a kernel penalty is chosen with its option name
    keep = [names.get(s, s) for s in facts.regularization]
    return "regularization=[" + ",".join(dict.fromkeys([*keep, *sections])) + "]"


def layers_in_order(stats: pd.DataFrame) -> List[str]:
    return list(dict.fromkeys(stats["layer"])) if not stats.empty else []


def judged(stats: pd.DataFrame, rules: DiagnosisRules) -> pd.DataFrame:
    """The rows of the epochs gradient rules judge: from start_fraction of the run on."""
    if stats.empty:
        return stats
    last = int(stats["epoch"].max())
    start = max(1, math.ceil(rules.start_fraction * last)) if last >= 1 else 0
    return stats[stats["epoch"] >= start]


def norm_ratio(stats: pd.DataFrame) -> pd.Series:
    """Per epoch: the first layer's gradient norm over the last (output) layer's."""
    layers = layers_in_order(stats)
    if len(layers) < 2:
        return pd.Series(dtype=float)
    by = stats.pivot_table(index="epoch", columns="layer", values="grad_norm", aggfunc="first", dropna=False)
    first, last = by[layers[0]].astype(float), by[layers[-1]].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return first / last


def judged_ratio(stats: pd.DataFrame, rules: DiagnosisRules) -> pd.Series:
    """norm_ratio over the judged epochs, where it is finite."""
    return norm_ratio(judged(stats, rules)).replace([np.inf, -np.inf], np.nan).dropna()


def _norms_line(stats: pd.DataFrame, epoch: int, most: int = 5) -> str:
    rows = stats[stats["epoch"] == epoch]
    layers = list(rows["layer"])
    if len(layers) > most:  # the first two and the last layers
        keep = layers[:2] + layers[-(most - 2):]
        rows = rows[rows["layer"].isin(keep)]
    return ", ".join(f"{r.layer} {fmt(float(r.grad_norm))}" for r in rows.itertuples())


def loss_before(stats: pd.DataFrame, history: pd.DataFrame) -> Optional[float]:
    """The training loss before any step: the statistics' epoch 0, else the first epoch's."""
    if not stats.empty and (stats["epoch"] == 0).any():
        value = float(stats.loc[stats["epoch"] == 0, "loss"].iloc[0])
        if math.isfinite(value):
            return value
    if "loss" in history and len(history):
        value = float(history["loss"].iloc[0])
        return value if math.isfinite(value) else None
    return None


def _since(series: pd.Series, condition: Callable[[float], bool]) -> Optional[int]:
    """The epoch from which `condition` holds until the end (None if it does not hold at the end)."""
    start = None
    for epoch, value in series.items():
        if condition(value):
            start = epoch if start is None else start
        else:
            start = None
    return start


# -------------------------------------------------------------------- rules
def diverged(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts, rules: DiagnosisRules) -> Optional[Finding]:
    """NaN or infinite training loss: training stopped at that epoch."""
    if "loss" not in history or history.empty:
        return None
    loss = history["loss"].astype(float).to_numpy()
    bad = np.flatnonzero(~np.isfinite(loss))
    if not len(bad):
        return None
    at = int(history["epoch"].iloc[bad[0]])
    before = f" (it was {fmt(loss[bad[0] - 1])} at epoch {at - 1})" if bad[0] > 0 else ""
    overrides = [(_lr(facts, 0.1),)] + ([] if facts.clipnorm else [(_clip(facts),)])
    return Finding("diverged", f"the training loss became {loss[bad[0]]} at epoch {at}{before}; training stopped "
                   "there. The steps were so large that the weights overflowed.",
                   "lower the learning rate tenfold" + ("" if facts.clipnorm else ", or clip the gradients"),
                   tuple(overrides))


def exploding_gradients(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts,
                        rules: DiagnosisRules) -> Optional[Finding]:
    """NaN/inf gradients, a first/last-layer gradient ratio above exploding_ratio, or a
    training loss that jumps far above its value before training."""
    seen = []
    if not stats.empty:
        trained = stats[stats["epoch"] >= 1]
        bad = trained[~np.isfinite(trained["grad_norm"].astype(float))]
        if len(bad):
            first = bad.iloc[0]
            seen.append(f"the gradient of {first['layer']} was {first['grad_norm']} at epoch {int(first['epoch'])}")
        ratio = judged_ratio(stats, rules)
        if len(ratio) and float(ratio.median()) > rules.exploding_ratio:
            layers = layers_in_order(stats)
            last = int(stats["epoch"].max())
            seen.append(f"the first layer ({layers[0]}) got gradients {fmt(float(ratio.median()))} times the size "
                        f"of the output layer's (median over epochs {int(ratio.index.min())}-{int(ratio.index.max())}, "
                        f"above {fmt(rules.exploding_ratio)}); gradient norms at epoch {last}: {_norms_line(stats, last)}")
    start = loss_before(stats, history)
    if start and "loss" in history and len(history):
        loss = history["loss"].astype(float)
        finite = loss[np.isfinite(loss)]
        if len(finite) and float(finite.max()) > rules.exploding_loss * start:
            at = int(history.loc[finite.idxmax(), "epoch"])
            seen.append(f"the training loss jumped to {fmt(float(finite.max()))} at epoch {at}, "
                        f"{fmt(float(finite.max()) / start)} times its value before training ({fmt(start)})")
    if not seen:
        return None
    overrides = ([] if facts.clipnorm else [(_clip(facts),)]) + [(_lr(facts, 0.1),)]
    return Finding("exploding_gradients", "; ".join(seen) + ". Each step overshoots and makes the next one larger.",
                   ("clip the gradient norm, or " if not facts.clipnorm else "") + "lower the learning rate tenfold",
                   tuple(overrides))


def vanishing_gradients(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts,
                        rules: DiagnosisRules) -> Optional[Finding]:
    """The first layer's gradient is a tiny fraction of the output layer's (median over
    the judged epochs): the early layers barely learn."""
    ratio = judged_ratio(stats, rules)
    if not len(ratio) or float(ratio.median()) >= rules.vanishing_ratio:
        return None
    layers = layers_in_order(stats)
    last = int(stats["epoch"].max())
    depth = len(layers) - 1
    evidence = (f"the first layer ({layers[0]}) got gradients {fmt(float(ratio.median()))} times the size of the "
                f"output layer's (median over epochs {int(ratio.index.min())}-{int(ratio.index.max())}; below "
                f"{fmt(rules.vanishing_ratio)} counts as vanishing). Gradient norms at epoch {last}: "
                f"{_norms_line(stats, last)}. Through {depth} hidden layers"
                + (f" of {facts.activation} (whose slope is at most {0.25 if facts.activation == 'sigmoid' else 1})"
                   if facts.activation in SATURATING else "")
                + " the gradient shrinks layer by layer, so the early layers barely learn.")
    overrides: List[Tuple[str, ...]] = []
    if facts.activation in SATURATING:
        overrides.append(("model.activation=relu", "model.initializer=he_normal"))
    if "batchnorm" not in facts.regularization:
        overrides.append((_with_sections(facts, "batchnorm"),))
    if facts.model == "mlp" and len(facts.units) >= 2:
        blocks = list(facts.units[::2])
        overrides.append(("model=residual_mlp", f"model.units=[{','.join(map(str, blocks))}]",
                          f"model.activation={facts.activation}"))
    words = {"model.activation=relu": "a non-saturating activation with He initialisation",
             "regularization": "batch normalisation", "model=residual_mlp": "skip connections (a residual MLP)"}
    said = [next(v for k, v in words.items() if o[0].startswith(k)) for o in overrides]
    return Finding("vanishing_gradients", evidence, "try " + ", or ".join(said), tuple(overrides))


def _unit_rule(column: str, activations: Sequence[str], threshold: float, what: str,
               stats: pd.DataFrame, facts: RunFacts) -> Optional[str]:
    """The evidence for the layers whose `column` fraction is at least `threshold` at the
    last epoch, with the epoch since which it has been; None when there is none."""
    if stats.empty or column not in stats:
        return None
    output = layers_in_order(stats)[-1]  # a confident sigmoid output is pinned by design: hidden layers only
    rows = stats[stats["activation"].isin(activations) & (stats["layer"] != output)]
    last = int(stats["epoch"].max())
    parts = []
    for layer in layers_in_order(rows):
        series = rows[rows["layer"] == layer].set_index("epoch")[column].astype(float)
        if last not in series.index or not series[last] >= threshold:
            continue
        since = _since(series, lambda v: v >= threshold)
        units = int(rows.loc[rows["layer"] == layer, "units"].iloc[0])
        parts.append(f"{layer}: {pct(series[last])} of its {units} units {what} "
                     + ("from the start" if since == 0 else f"since epoch {since}"))
    if not parts:
        return None
    rows_text = f"all {facts.probe_rows} rows of the probe batch" if facts.probe_rows else "every probe row"
    return "; ".join(parts) + f" (for {rows_text}, at the last epoch {last})"


def dead_units(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts, rules: DiagnosisRules) -> Optional[Finding]:
    """ReLU layers where most units output 0 for every row: they get no gradient and never recover."""
    evidence = _unit_rule("dead_fraction", DEAD_CAN_HAPPEN, rules.dead_fraction, "output 0", stats, facts)
    if evidence is None:
        return None
    overrides = [("model.activation=leaky_relu",)]
    if "batchnorm" not in facts.regularization:
        overrides.append((_with_sections(facts, "batchnorm"),))
    overrides.append((_lr(facts, 0.1),))
    return Finding("dead_units", evidence + ". A dead ReLU unit gets no gradient, so it never comes back.",
                   "use leaky_relu (it keeps a small slope below 0), batch normalisation, or a smaller learning rate",
                   tuple(overrides))


def saturated_units(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts,
                    rules: DiagnosisRules) -> Optional[Finding]:
    """sigmoid/tanh layers where most units sit at a bound for every row: their slope is ~0."""
    evidence = _unit_rule("saturated_fraction", SATURATING, rules.saturated_fraction, "pinned at a bound",
                          stats, facts)
    if evidence is None:
        return None
    overrides: List[Tuple[str, ...]] = [("model.activation=relu", "model.initializer=he_normal")]
    if "batchnorm" not in facts.regularization:
        overrides.append((_with_sections(facts, "batchnorm"),))
    if facts.initializer not in ("glorot_uniform", "glorot_normal"):
        overrides.append(("model.initializer=glorot_uniform",))
    return Finding("saturated_units", evidence + ". A saturated unit's slope is almost 0, so little gradient passes.",
                   "use relu with He initialisation, batch normalisation, or smaller initial weights", tuple(overrides))


def spikes(loss: pd.Series, floor: float) -> pd.Series:
    """The epochs where the loss stands at least twice its lowest value so far, and
    more than `floor` above it: a jump back up, not noise around a low loss."""
    best = loss.cummin().shift(1)
    return loss[(loss >= SPIKE_FACTOR * best) & (loss - best > floor)]


def unstable(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts, rules: DiagnosisRules) -> Optional[Finding]:
    """The training loss goes up in many epochs, by a real amount, or keeps jumping back
    far above its best: the steps overshoot instead of settling."""
    if "loss" not in history or len(history) < rules.min_epochs:
        return None
    loss = history["loss"].astype(float)
    start = loss_before(stats, history)
    if not start or not np.isfinite(loss).all():
        return None
    steps = loss.diff().iloc[1:]
    rises = steps[steps > rules.unstable_rise * start]
    jumps = spikes(loss, rules.unstable_rise * start)
    frequent = len(rises) >= 2 and len(rises) / len(steps) >= rules.unstable_rises
    if not frequent and len(jumps) < rules.unstable_spikes:
        return None
    seen = []
    if len(rises):
        epochs = [int(history.loc[i, "epoch"]) for i in rises.index]
        shown = ", ".join(map(str, epochs[:8])) + (" ..." if len(epochs) > 8 else "")
        seen.append(f"the training loss rose in {len(rises)} of {len(steps)} epochs (epochs {shown}), by up to "
                    f"{fmt(float(rises.max()))} ({pct(float(rises.max()) / start)} of its {fmt(start)} before training)")
    if len(jumps) >= rules.unstable_spikes:
        worst = jumps.idxmax()
        seen.append(f"in {len(jumps)} epochs it stood at least twice its lowest value so far (worst: "
                    f"{fmt(float(jumps[worst]))} at epoch {int(history.loc[worst, 'epoch'])}, after a low of "
                    f"{fmt(float(loss.loc[:worst].iloc[:-1].min()))})")
    overrides: List[Tuple[str, ...]] = [(_lr(facts, 0.1),)]
    if isinstance(facts.batch_size, int) and facts.batch_size * 4 <= max(facts.train_rows, 1):
        overrides.append((f"trainer.batch_size={facts.batch_size * 4}",))
    overrides.append(("schedule=cosine",))
    return Finding("unstable", "; ".join(seen) + ": the steps overshoot instead of settling.",
                   "lower the learning rate, use larger batches (less noisy steps), or let a schedule decay it",
                   tuple(overrides))


def progress_column(history: pd.DataFrame, facts: RunFacts) -> Optional[str]:
    column = f"val_{facts.metric}" if facts.metric else None
    return column if column and column in history and facts.chance is not None else None


def underfitting(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts,
                 rules: DiagnosisRules) -> Optional[Finding]:
    """No real progress from chance: the best validation metric closed less than
    min_progress of the gap between guessing and a perfect score."""
    if len(history) < rules.min_epochs:
        return None
    column = progress_column(history, facts)
    if column is None:
        return None
    values = history[column].astype(float)
    if not np.isfinite(values).any():
        return None
    best = float(values.max() if facts.higher_is_better else values.min())
    gap = (facts.perfect - facts.chance) if facts.higher_is_better else (facts.chance - facts.perfect)
    if gap <= 0:
        return None
    gained = ((best - facts.chance) if facts.higher_is_better else (facts.chance - best)) / gap
    if gained >= rules.min_progress:
        return None
    guess = {"accuracy": "always answering the most common class", "auc": "guessing",
             "mae": "always answering the training mean"}.get(facts.metric or "", "guessing")
    evidence = (f"the best validation {facts.metric} was {fmt(best)}, against {fmt(facts.chance)} for {guess}: it "
                f"closed {pct(max(gained, 0.0))} of the gap to a perfect score in {len(history)} epochs")
    start, loss = loss_before(stats, history), history["loss"].astype(float) if "loss" in history else None
    if start and loss is not None and np.isfinite(loss).all():
        evidence += f"; the training loss went from {fmt(start)} to {fmt(float(loss.iloc[-1]))}"
    tail = values.iloc[-max(2, len(values) // 4):]
    rising = (float(tail.iloc[-1] - tail.iloc[0]) * (1 if facts.higher_is_better else -1)) > STILL_RISING * \
        max(abs(best - float(values.iloc[0])), 1e-12)
    steps = stats.loc[stats["epoch"] >= 1, "update_ratio"].astype(float) if not stats.empty else pd.Series(dtype=float)
    step = float(steps.median()) if len(steps.dropna()) else None
    if step is not None and step < SMALL_STEPS:
        evidence += (f". The weights changed by only {fmt(100 * step)}% per epoch (median)"
                     + (" and the metric was still rising" if rising else "") + ": the steps are too small")
        overrides = [(_lr(facts, 10),), ("optimizer=adam",), (f"trainer.epochs={3 * len(history)}",)]
        suggestion = "raise the learning rate tenfold, use an adaptive optimizer (adam), or train longer"
    else:
        wider = [min(4 * u, 1024) for u in facts.units] or [256]
        overrides = [(_lr(facts, 10),), (f"model.units=[{','.join(map(str, wider))}]",),
                     (f"trainer.epochs={3 * len(history)}",)]
        suggestion = "raise the learning rate, give the network more capacity, or train longer"
    return Finding("underfitting", evidence + ".", suggestion, tuple(overrides))


def overfitting(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts,
                rules: DiagnosisRules) -> Optional[Finding]:
    """Validation loss rises well above its best while the training loss keeps falling,
    and the run ends on those later weights (not restored to the best epoch)."""
    if facts.restored_best or not {"loss", "val_loss"} <= set(history) or len(history) < rules.min_epochs:
        return None
    val, train = history["val_loss"].astype(float), history["loss"].astype(float)
    if not (np.isfinite(val).all() and np.isfinite(train).all()):
        return None
    best = int(val.idxmin())
    after = len(history) - 1 - history.index.get_loc(best)
    rise = (float(val.iloc[-1]) - float(val[best])) / max(abs(float(val[best])), 1e-12)
    if after < rules.overfit_epochs or rise < rules.overfit_rise or not float(train.iloc[-1]) < float(train[best]):
        return None
    b, e = int(history.loc[best, "epoch"]), int(history["epoch"].iloc[-1])
    gap_best, gap_end = float(val[best] - train[best]), float(val.iloc[-1] - train.iloc[-1])
    rows = f" {facts.train_rows}" if facts.train_rows else ""
    overrides = [(_with_sections(facts, "dropout", "l2", "early_stopping"),), ("trainer.keep_best=true",)]
    return Finding("overfitting",
                   f"the validation loss rose from {fmt(float(val[best]))} at epoch {b} to {fmt(float(val.iloc[-1]))} "
                   f"at epoch {e} (+{pct(rise)}) while the training loss fell from {fmt(float(train[best]))} to "
                   f"{fmt(float(train.iloc[-1]))}: the gap between them grew from {fmt(gap_best)} to {fmt(gap_end)}. "
                   f"The network memorises its{rows} training rows instead of learning what carries over.",
                   "regularize (dropout, an L2 penalty, early stopping), or keep the best epoch's weights",
                   tuple(overrides))


RULES: Dict[str, Rule] = {
    "diverged": diverged,
    "exploding_gradients": exploding_gradients,
    "vanishing_gradients": vanishing_gradients,
    "dead_units": dead_units,
    "saturated_units": saturated_units,
    "unstable": unstable,
    "underfitting": underfitting,
    "overfitting": overfitting,
}
assert tuple(RULES) == VERDICTS


def diagnose(stats: pd.DataFrame, history: pd.DataFrame, facts: RunFacts, rules: DiagnosisRules) -> Diagnosis:
    """Every rule's finding, most severe first; the verdict is the first one's problem, or ok."""
    stats = stats if stats is not None else pd.DataFrame()
    history = (history if history is not None else pd.DataFrame()).reset_index(drop=True)
    findings = [f for f in (rule(stats, history, facts, rules) for rule in RULES.values()) if f is not None]
    if findings and findings[0].problem == "diverged":
        findings = findings[:1] + [f for f in findings[1:] if f.problem != "exploding_gradients"]
    return Diagnosis(findings[0].problem if findings else OK, findings)
