"""What `dlrun results --columns/--metric/--sort/--group-by` read from each run:
config values by dotted key (from the run folder's config.yaml), split-qualified
metrics (from its metrics.json, or the registry's headline) and the entry's tags.
Each file is read once, only when an option needs it (yaml.safe_load and json: no
TensorFlow, no Hydra). A run whose folder lacks a file has blank values there."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dlrun.errors import DlrunError, closest, one_of
from dlrun.preflight import SPLITS
from dlrun.results.rundir import read_record  # metric names are <split>_<metric>: val_accuracy, test_loss

NOISE = {"name", "allowed_imports", "trainer.seed", "trainer.verbose", "trainer.threads",
         "trainer.save_model"}  # keys that never explain a difference in results (the seed is a column)
PREFERRED = ("data", "model", "optimizer", "schedule", "loss", "regularization")  # groups first, in this order
MAX_DEFAULT = 5  # most config columns added when --columns is auto
MISSING = object()  # a key the run does not have (blank), unlike a key set to null ('none')
ENTRY_KEYS = ("status", "verdict")  # columns read from the registry entry itself


class Run:
    """One registry entry, with its folder's config.yaml and metrics.json read on first use."""

    def __init__(self, entry: Dict[str, Any]) -> None:
        self.entry = entry
        self._config: Any = MISSING
        self._metrics: Any = MISSING

    @property
    def tags(self) -> Dict[str, Any]:
        tags = self.entry.get("tags")
        return tags if isinstance(tags, dict) else {}

    @property
    def config(self) -> Dict[str, Any]:
        if self._config is MISSING:
            self._config = read_record(Path(self.entry["run_dir"]) / "config.yaml")
        return self._config

    @property
    def metrics(self) -> Dict[str, Any]:
        if self._metrics is MISSING:
            self._metrics = read_record(Path(self.entry["run_dir"]) / "metrics.json")
        return self._metrics


# ----------------------------------------------------------------- config values and tags
def shown(value: Any) -> Any:
    """A config value as a cell: a section's name, the enabled sections of a dict of
    sections ('+'-joined, or 'none'), null as 'none', a list as '[a, b]'."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        if "name" in value:
            return shown(value["name"])
        if all(v is None or isinstance(v, dict) for v in value.values()):  # regularization
            return "+".join(k for k, v in value.items() if v is not None) or "none"
        return ",".join(f"{k}={shown(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(shown(v)) for v in value) + "]"
    return value


def lookup(config: Dict[str, Any], key: str) -> Any:
    """The raw value at dotted `key` in `config`, or MISSING."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def value(run: Run, key: str) -> Any:
    """The cell of config key or tag `key` for `run` (None: the run does not have it)."""
    if key in ENTRY_KEYS:
        return run.entry.get(key)
    if key in run.tags:
        return shown(run.tags[key])
    found = lookup(run.config, key)
    return None if found is MISSING else shown(found)


def leaves(config: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Every leaf of `config` by dotted key, in file order (lists are leaves)."""
    out: Dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(leaves(v, key + "."))
        else:
            out[key] = shown(v)
    return out


def known_keys(runs: Sequence[Run]) -> List[str]:
    """The tags and config keys (sections and leaves) of `runs`, for suggestions."""
    found: Dict[str, None] = dict.fromkeys(ENTRY_KEYS)
    for run in runs:
        found.update(dict.fromkeys(run.tags))
        found.update(dict.fromkeys(k for k, v in run.config.items() if isinstance(v, dict)))
        found.update(dict.fromkeys(leaves(run.config)))
    return list(found)


def check_keys(option: str, keys: Sequence[str], runs: Sequence[Run]) -> None:
    """Raise DlrunError naming the first of `keys` that no run in `runs` has."""
    for key in keys:
        if key not in ENTRY_KEYS and not any(key in run.tags or lookup(run.config, key) is not MISSING
                                             for run in runs):
            raise DlrunError(f"{option} {key!r}: no listed run has that config key or tag; "
                             + suggest(key, known_keys(runs), "optimizer, optimizer.learning_rate, "
                                       "trainer.batch_size, contender"))


def suggest(word: str, choices: Sequence[str], examples: str) -> str:
    """one_of(word, choices) when the choices are few; else the closest one and examples."""
    choices = sorted(set(choices))
    if not choices:
        return "the listed runs have no config.yaml, metrics.json or tags to read"
    if len(choices) <= 15:
        return one_of(word, choices)
    hint = closest(word, choices)
    return (f"did you mean '{hint}'? " if hint else "") + f"(e.g. {examples})"


def differing_keys(runs: Sequence[Run], cap: int = MAX_DEFAULT) -> Tuple[List[str], List[str]]:
    """The keys worth a column when --columns is not given: `contender` when a run has
    one, the config groups whose choice differs among `runs` (optimizer, model,
    regularization, ...), then the leaves with two or more values among the runs that
    have them (a leaf that only one group's runs have comes with that group). Returns
    (the first `cap`, the rest)."""
    configs = [leaves(r.config) for r in runs if r.config]
    found: List[str] = ["contender"] if any("contender" in r.tags for r in runs) else []
    sections = [k for k in PREFERRED if len({str(value(r, k)) for r in runs if r.config}) > 1]
    found += sections
    order: Dict[str, None] = {}
    for leaf in configs:
        order.update(dict.fromkeys(leaf))
    for key in order:
        if key in NOISE or key.rsplit(".", 1)[-1] == "name" and key.rsplit(".", 1)[0] in sections:
            continue
        values = {str(c[key]) for c in configs if key in c}
        if len(values) > 1:
            found.append(key)
    return found[:cap], found[cap:]


# ----------------------------------------------------------------- metrics
def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def headline(run: Run) -> Tuple[Optional[str], Optional[float]]:
    """The registry's headline metric of `run`: (name, value), either may be None."""
    metric = run.entry.get("metric")
    if not isinstance(metric, dict):
        return None, None
    return metric.get("name"), _number(metric.get("value"))


def default_metric(runs: Sequence[Run]) -> Optional[str]:
    """The headline metric most of `runs` report (ties: the newest run's)."""
    names = [n for n in (headline(r)[0] for r in runs) if n]
    return max(names, key=names.count) if names else None


def metric(run: Run, name: str) -> Optional[float]:
    """The value of `name` (<split>_<metric>) for `run`: its headline when that is the
    metric, else from its metrics.json; None when it has none (or not a finite number)."""
    head, head_value = headline(run)
    if head == name:
        return head_value
    split, _, key = name.partition("_")
    section = run.metrics.get(split)
    return _number(section.get(key)) if isinstance(section, dict) else None


def is_metric(name: str, runs: Sequence[Run]) -> bool:
    """Whether `name` names a metric (a split prefix, or a run's headline) rather than a key."""
    return name.partition("_")[0] in SPLITS or any(headline(r)[0] == name for r in runs)


def check_metric(option: str, name: str, runs: Sequence[Run]) -> None:
    """Raise DlrunError when no run in `runs` has metric `name`, suggesting one that they have."""
    if any(metric(r, name) is not None for r in runs):
        return
    known = {n for n in (headline(r)[0] for r in runs) if n}
    for run in runs:
        known.update(f"{split}_{k}" for split in SPLITS if isinstance(run.metrics.get(split), dict)
                     for k, v in run.metrics[split].items() if _number(v) is not None)
    raise DlrunError(f"{option} {name!r}: no listed run has that metric; "
                     + suggest(name, sorted(known), "val_accuracy, test_loss, train_mae"))
