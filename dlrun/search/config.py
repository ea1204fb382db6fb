"""The validated config of a search: the base run config, the algorithm's
settings, the space, and the composed node of every group option the space
chooses between. Built before TensorFlow is imported."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from dlrun.config.compose import compose, group_options
from dlrun.config.schema import RunConfig, SearchBase
from dlrun.config.validation import to_object, validate
from dlrun.errors import ConfigError
from dlrun.search.space import Param, Space, apply, grid_size, parse_space

MINIMIZE_HINTS = ("loss", "error", "mae", "mse", "rmse", "mape")
MAXIMIZE_HINTS = ("accuracy", "auc", "precision", "recall", "r2", "f1")


@dataclass
class TuneConfig:
    run: RunConfig                     # the base config every trial starts from
    base: DictConfig                   # the same, as composed (trials write into copies)
    search: SearchBase
    space: Space
    group_nodes: Dict[str, Dict[str, DictConfig]]  # group -> option -> composed node

    @property
    def direction(self) -> str:  # checked by check_objective before anything runs
        return resolve_direction(self.search)

    def trial_config(self, values: Dict[str, Any]) -> RunConfig:
        """The validated run config of one trial (a ConfigError fails that trial only)."""
        return validate(apply(self.base, values, self.group_nodes))


def planned_trials(tune: TuneConfig) -> Optional[int]:
    """How many trials the search will run (None: decided as it goes, e.g. Hyperband)."""
    s = tune.search
    if s.name == "grid":
        size = grid_size(tune.space)
        return min(size, s.max_trials) if s.max_trials else size
    if s.name == "hyperband":
        return None
    return s.max_trials


def resolve_direction(search: SearchBase) -> str:
    """'min' or 'max': search.direction, or for 'auto' what the objective's name says."""
    if search.direction != "auto":
        return search.direction
    name = search.objective.lower()
    if any(h in name for h in MINIMIZE_HINTS):
        return "min"
    if any(h in name for h in MAXIMIZE_HINTS):
        return "max"
    raise ConfigError("search.direction", "auto", f"cannot tell whether {search.objective!r} is better "
                      "small or large; set search.direction=min or max")


@lru_cache(maxsize=256)
def _group_node(config_name: str, overrides: tuple, extra_dirs: tuple, group: str, option: str) -> DictConfig:
    """A group option's node as composed with the search's overrides (cached: the CLI's
    check and the run that follows compose the same ones; trials copy before writing)."""
    return compose(config_name, [*overrides, f"{group}={option}"], extra_dirs)[group]


def _sample(param: Param) -> Any:
    return param.grid_values()[0] if param.type != "Float" or param.step else param.min


def validate_tune(cfg: DictConfig, overrides: Sequence[str] = (), extra_dirs: Sequence[str] = (),
                  config_name: str = "tune") -> TuneConfig:
    """Check the search settings and the space against the base config. Raises ConfigError."""
    run = validate(cfg)
    search = to_object("search", cfg.get("search"))
    node = cfg.get("space")
    space_node = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    space = parse_space(space_node, group_options(extra_dirs), search.name)
    # the objective and its direction need the data's task: check_objective (preflight)
    group_nodes: Dict[str, Dict[str, DictConfig]] = {}
    for param in space.params:
        if param.is_group:
            options = param.values if param.type == "Choice" else [param.value]
            group_nodes[param.key] = {option: _group_node(config_name, tuple(overrides), tuple(extra_dirs),
                                                          param.key, option) for option in options}
    tune = TuneConfig(run=run, base=cfg, search=search, space=space, group_nodes=group_nodes)
    for param in space.params:  # every entry must land on a real key with an allowed value
        values = {parent: vals[0] for parent, vals in param.when.items()}
        values[param.key] = _sample(param)
        try:
            tune.trial_config(values)
        except ConfigError as err:
            raise ConfigError(f"space.{param.key}", None if param.is_group else _sample(param),
                              f"cannot be applied: {err}") from None
    if search.name == "hyperband" and search.max_trials is not None:
        raise ConfigError("search.max_trials", search.max_trials, "hyperband sizes itself; set "
                          "search.max_epochs and search.factor instead")
    return tune


def objective_names(metrics: List[str]) -> List[str]:
    names = ["loss", *metrics]
    return names + [f"val_{n}" for n in names]


def check_objective(search: SearchBase, metrics: List[str]) -> None:
    """The objective must be a name the model produces (a typo gets a suggestion), and
    then its direction must be known: a real name first, so that a typo is not
    reported as an unknown direction."""
    from dlrun.preflight import check_produced

    check_produced("search.objective", search.objective, objective_names(metrics))
    resolve_direction(search)


__all__ = ["TuneConfig", "validate_tune", "check_objective", "resolve_direction"]


def preflight_tune(tune: TuneConfig):
    """The data-dependent checks of a search (data, loss, metrics, objective) and
    warnings worth showing; no TensorFlow."""
    from dlrun.preflight import checked, metric_names

    bundle, notes = checked(tune.run)
    check_objective(tune.search, metric_names(tune.run, bundle.meta.task))
    if tune.search.name == "hyperband" and tune.run.trainer.epochs != tune.search.max_epochs:
        notes.append(f"search=hyperband trains each model for up to search.max_epochs={tune.search.max_epochs} "
                     f"epochs; trainer.epochs={tune.run.trainer.epochs} is not used")
    return bundle, notes
