"""Search spaces written in YAML: config keys with keras-tuner types, nested like
the config itself (so that `space.optimizer.learning_rate.max=0.5` works on the
command line); `option` chooses a config group's option:

    optimizer:
      option: {type: Choice, values: [sgd, momentum, adam]}     # key "optimizer"
      learning_rate: {type: Float, min: 1.0e-4, max: 1.0e-1, sampling: log}
      momentum: {type: Float, min: 0.5, max: 0.99, when: {optimizer: [momentum]}}
    model:
      units: {type: Int, min: 32, max: 256, step: 32}            # key "model.units"

Dotted keys (`optimizer.learning_rate: {...}`) are read the same way.

Parsing and checking need no TensorFlow (they run before anything heavy is
imported); `declare` turns the space into keras-tuner HyperParameters, with
`when` as conditional scopes, and `apply` writes a trial's values into a config.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dlrun.errors import UNSET, ConfigError, one_of

TYPES = ("Float", "Int", "Choice", "Boolean", "Fixed")
FIELDS = {"Float": {"min", "max", "sampling", "step"}, "Int": {"min", "max", "step", "sampling"},
          "Choice": {"values"}, "Boolean": set(), "Fixed": {"value"}}


@dataclass
class Param:
    key: str                           # dotted config key, or a group name (choose its option)
    type: str
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    sampling: str = "linear"
    values: Optional[List[Any]] = None
    value: Any = None
    when: Dict[str, List[Any]] = field(default_factory=dict)  # parent key -> values that activate this

    @property
    def is_group(self) -> bool:
        return "." not in self.key

    def grid_values(self) -> List[Any]:
        """Every value a grid search visits."""
        if self.type == "Choice":
            return list(self.values or [])
        if self.type == "Boolean":
            return [False, True]
        if self.type == "Fixed":
            return [self.value]
        step = self.step if self.step is not None else 1
        if self.type == "Float" and self.sampling == "log":  # the step multiplies: 1e-4, 1e-3, 1e-2
            count = int(math.floor(math.log(self.max / self.min) / math.log(step) + 1e-9)) + 1
            return [tidy(self.min * step ** i) for i in range(count)]
        count = int(math.floor((self.max - self.min) / step + 1e-9)) + 1
        return [tidy(self.min + i * step) for i in range(count)]


@dataclass
class Space:
    params: List[Param]

    def keys(self) -> List[str]:
        return [p.key for p in self.params]

    def by_key(self, key: str) -> Param:
        return next(p for p in self.params if p.key == key)

    def to_dict(self) -> Dict[str, Any]:
        return {p.key: {k: v for k, v in vars(p).items() if k != "key" and v not in (None, {}, "linear")}
                for p in self.params}


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, value, "must be a number")
    return float(value)


OPTION = "option"  # in a group's block of the space: search over the group's options


def flatten(node: Mapping[str, Any], prefix: str = "") -> List[tuple]:
    """(config key, spec, where in the space) for every entry of a nested space."""
    out = []
    for name, value in node.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, Mapping) and "type" in value:
            key = prefix if name == OPTION and prefix else path
            out.append((key, value, f"space.{path}"))
        elif isinstance(value, Mapping):  # a block of entries (an emptied one adds nothing)
            out += flatten(value, path)
        else:
            raise ConfigError(f"space.{path}", value, "must be a mapping with a type, such as "
                              "{type: Float, min: 0.001, max: 0.1}")
    return out


def parse_space(node: Mapping[str, Any], groups: Mapping[str, Sequence[str]], algorithm: str) -> Space:
    """Check every entry of a space; `groups` maps each config group to its options."""
    entries = flatten(node or {})
    if not entries:
        raise ConfigError("space", UNSET, "the search space is empty; choose one with space=NAME or add "
                          "entries such as +space.optimizer.learning_rate={type:Float,min:0.001,max:0.1}")
    params: List[Param] = []
    for key, spec, where in entries:
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in TYPES:
            raise ConfigError(f"{where}.type", kind, one_of(str(kind), TYPES))
        when = spec.pop("when", None) or {}
        unknown = set(spec) - FIELDS[kind]
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(f"{where}.{name}", UNSET, f"not a field of {kind}; " + one_of(name, FIELDS[kind] or {"type"}))
        param = Param(key=str(key), type=kind, when={str(k): list(v) for k, v in dict(when).items()})
        if kind in ("Float", "Int"):
            if "min" not in spec or "max" not in spec:
                raise ConfigError(where, UNSET, f"{kind} needs min and max")
            param.min, param.max = _number(spec["min"], f"{where}.min"), _number(spec["max"], f"{where}.max")
            param.sampling = str(spec.get("sampling", "linear"))
            if param.sampling not in ("linear", "log", "reverse_log"):
                raise ConfigError(f"{where}.sampling", param.sampling, one_of(param.sampling, ("linear", "log", "reverse_log")))
            if param.min >= param.max:
                raise ConfigError(f"{where}.min", spec["min"], f"must be below max ({spec['max']})")
            if param.sampling != "linear" and param.min <= 0:
                raise ConfigError(f"{where}.min", spec["min"], f"must be > 0 with sampling: {param.sampling}")
            if spec.get("step") is not None:
                param.step = _number(spec["step"], f"{where}.step")
                if param.step <= 0:
                    raise ConfigError(f"{where}.step", spec["step"], "must be > 0")
                if param.sampling == "log" and param.step <= 1:
                    raise ConfigError(f"{where}.step", spec["step"], "with sampling: log the step is a "
                                      "factor and must be > 1")
            if kind == "Int":
                for name in ("min", "max", "step"):
                    v = getattr(param, name)
                    if v is not None and v != int(v):
                        raise ConfigError(f"{where}.{name}", v, "must be an integer for Int")
                param.min, param.max = int(param.min), int(param.max)
                param.step = int(param.step) if param.step is not None else None
            if kind == "Float" and algorithm == "grid" and param.step is None:
                raise ConfigError(where, UNSET, "search=grid needs a step for a Float (or use a Choice "
                                  "with values)")
        elif kind == "Choice":
            values = list(spec.get("values") or [])
            if not values:
                raise ConfigError(f"{where}.values", spec.get("values"), "a Choice needs a non-empty list of values")
            if len(set(map(repr, values))) != len(values):
                dup = next(v for v in values if values.count(v) > 1)
                raise ConfigError(f"{where}.values", values, f"holds {dup!r} twice")
            if any(isinstance(v, (list, dict)) for v in values):
                raise ConfigError(f"{where}.values", values, "must be numbers, strings or booleans")
            kinds = {"boolean" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "string"
                     for v in values}
            if len(kinds) > 1:
                raise ConfigError(f"{where}.values", values, "must all be of one type (numbers, strings or "
                                  f"booleans), not a mix of {' and '.join(sorted(kinds))}")
            param.values = values
        elif kind == "Fixed":
            if "value" not in spec:
                raise ConfigError(where, UNSET, "a Fixed entry needs a value")
            param.value = spec["value"]
        if param.is_group:
            if param.key not in groups:
                raise ConfigError(where, UNSET, "unknown config group; " + one_of(param.key, groups))
            if kind not in ("Choice", "Fixed"):
                raise ConfigError(f"{where}.type", kind, "a config group is searched with a Choice of its options")
            options = groups[param.key]
            for option in (param.values or [param.value]):
                if option not in options:
                    raise ConfigError(where, option, f"not an option of {param.key}; " + one_of(str(option), options))
        params.append(param)
    keys = [p.key for p in params]
    for p in params:
        for parent, values in p.when.items():
            if parent not in keys:
                raise ConfigError(f"space.{p.key}.when", parent, "must name another entry of the space; "
                                  + one_of(parent, keys))
            parent_param = next(q for q in params if q.key == parent)
            allowed = parent_param.grid_values() if parent_param.type != "Float" else None
            if allowed is None:
                raise ConfigError(f"space.{p.key}.when", parent, "a condition needs a Choice, Int or Boolean parent")
            for v in values:
                if v not in allowed:
                    raise ConfigError(f"space.{p.key}.when.{parent}", v, "not a value of that entry; "
                                      + one_of(str(v), map(str, allowed)))
    # keras-tuner needs a condition's parent declared first: entries without conditions lead
    ordered = [p for p in params if not p.when] + [p for p in params if p.when]
    return Space(ordered)


def grid_size(space: Space) -> int:
    """The number of distinct trials a grid search runs (conditional keys counted
    only where active)."""
    parents = [p for p in space.params if any(p.key in q.when for q in space.params)]
    total = 0
    for combo in itertools.product(*[p.grid_values() for p in parents]):
        chosen = dict(zip([p.key for p in parents], combo))
        size = 1
        for p in space.params:
            if p in parents or not _active(p, chosen):
                continue
            size *= len(p.grid_values())
        if all(_active(p, chosen) for p in parents):
            total += size
    return total


def _active(param: Param, chosen: Mapping[str, Any]) -> bool:
    return all(chosen.get(parent) in values for parent, values in param.when.items())


def declare(space: Space) -> Any:
    """keras-tuner HyperParameters for `space` (conditions become conditional scopes)."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for p in space.params:
        scopes = [hp.conditional_scope(parent, values) for parent, values in p.when.items()]
        for scope in scopes:
            scope.__enter__()
        try:
            if p.type == "Float":
                hp.Float(p.key, p.min, p.max, step=p.step, sampling=p.sampling)
            elif p.type == "Int":
                hp.Int(p.key, int(p.min), int(p.max), step=p.step or 1, sampling=p.sampling)
            elif p.type == "Choice":
                hp.Choice(p.key, p.values)
            elif p.type == "Boolean":
                hp.Boolean(p.key)
            else:
                hp.Fixed(p.key, p.value)
        finally:
            for scope in reversed(scopes):
                scope.__exit__(None, None, None)
    return hp


def _empty_section(cfg: DictConfig, path: str) -> Any:
    """A section with its schema defaults (e.g. regularization.dropout -> DropoutConfig())."""
    owner_path, _, name = path.rpartition(".")
    owner = OmegaConf.select(cfg, owner_path) if owner_path else cfg
    cls = OmegaConf.get_type(owner)
    if dataclasses.is_dataclass(cls):
        hint = typing.get_type_hints(cls).get(name)
        for candidate in (*typing.get_args(hint), hint):
            if dataclasses.is_dataclass(candidate):
                return OmegaConf.structured(candidate)
    return {}


def tidy(value: Any) -> Any:
    """0.30000000000000004 -> 0.3: keras-tuner's stepped Floats carry float noise."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.12g}")
    return value


def apply(base: DictConfig, values: Mapping[str, Any], group_nodes: Mapping[str, Mapping[str, DictConfig]]) -> DictConfig:
    """A copy of `base` with a trial's values written in: group choices first (the
    option's composed node replaces the group), then dotted keys. A value for a key
    inside a regularization section that is off turns that section on."""
    cfg = copy.deepcopy(base)
    items = [(k, tidy(v)) for k, v in values.items() if not k.startswith("tuner/")]
    with open_dict(cfg):
        for key, value in items:
            if "." not in key:
                cfg[key] = copy.deepcopy(group_nodes[key][value])
        for key, value in items:
            if "." not in key:
                continue
            parent, _, leaf = key.rpartition(".")
            if OmegaConf.select(cfg, parent) is None:
                OmegaConf.update(cfg, parent, _empty_section(cfg, parent), merge=False, force_add=True)
            current = OmegaConf.select(cfg, key)
            if OmegaConf.is_list(current) and not isinstance(value, (list, tuple)):
                # a number for a list of layer widths sets every layer: model.units=128 -> [128, 128]
                value = [value] * max(1, len(current))
            try:
                OmegaConf.update(cfg, key, value, force_add=True)
            except OmegaConfBaseException as err:
                raise ConfigError(key, value, str(err).splitlines()[0]) from None
    return cfg
