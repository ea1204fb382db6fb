"""Compose a config with Hydra and turn Hydra's composition errors into one-line
ConfigErrors. No TensorFlow here: this runs before anything heavy is imported."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, ValidationError

from dlrun.errors import UNSET, ConfigError, one_of


MULTI_CHOICE_GROUPS = ("regularization",)
OPEN_KEYS = ("study.contenders=", "study.contenders.")  # dicts whose keys the user names  # groups whose options combine: regularization=[l2,dropout]


def regularization_sections() -> List[str]:
    from dlrun.config.schema import RegularizationConfig

    return [f.name for f in dataclasses.fields(RegularizationConfig)]


def section_not_enabled(section: str) -> ConfigError:
    """regularization.dropout.rate=... while dropout is not among the chosen options."""
    return ConfigError(f"regularization.{section}", UNSET, f"'{section}' is not enabled; add it to the "
                       f"list, e.g. regularization=[{section},early_stopping]")


def conf_dir() -> str:
    """The folder of dlrun's own config groups (shipped as the package dlrun.conf)."""
    spec = importlib.util.find_spec("dlrun.conf")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dlrun's config folder (dlrun.conf) is not installed")
    return str(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=None)
def root_groups(config_name: str = "train") -> tuple:
    """The config groups (folders of dlrun's conf/): data, model, optimizer, ..."""
    return tuple(sorted(group_options()))


def normalize_overrides(overrides: Sequence[str], config_name: str) -> List[str]:
    """`+optimizer=adam` means `optimizer=adam`: Hydra rejects the `+` form for a
    group that the defaults list already names ("Multiple values for optimizer").
    `study.contenders={name: [...]}` and `study.contenders.NAME=[...]` add contenders
    (or replace those of the same name): Hydra's strict form for new keys is `++`."""
    groups = set(root_groups(config_name))
    out = []
    for item in overrides:
        if item.startswith(OPEN_KEYS) and "=" in item:
            item = "++" + item
        if item.startswith("+") and not item.startswith("++") and "=" in item:
            key = item[1:].split("=", 1)[0]
            if key in groups:
                item = item[1:]
        out.append(item)
    return out


def group_options(extra_dirs: Sequence[str] = ()) -> Dict[str, List[str]]:
    """Every config group (folder) of dlrun's conf/ and the user's folders, with its options."""
    out: Dict[str, List[str]] = {}
    for base in [conf_dir(), *extra_dirs]:
        for folder in Path(base).iterdir():
            if folder.is_dir() and not folder.name.startswith("_"):
                names = out.setdefault(folder.name, [])
                names += [p.stem for p in sorted(folder.glob("*.yaml")) if p.stem not in names]
    return out


def _keys_of(cfg: Optional[DictConfig], dotted_parent: str) -> List[str]:
    if cfg is None:
        return []
    node = OmegaConf.select(cfg, dotted_parent) if dotted_parent else cfg
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


def translate(exc: BaseException, extra_dirs: Sequence[str], base: Optional[DictConfig] = None,
              overrides: Sequence[str] = ()) -> ConfigError:
    """A one-line ConfigError for a Hydra/OmegaConf composition error."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if "Unexpected type for root: NoneType" in str(exc):  # a key set inside a section that is off
        for item in overrides:
            parts = item.lstrip("+~").split("=", 1)[0].split(".")
            if len(parts) > 2 and parts[0] == "regularization" and parts[1] in regularization_sections():
                return section_not_enabled(parts[1])

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        if group and not group.startswith("schema"):
            options = exc.options or group_options(extra_dirs).get(group, [])
            return ConfigError(group, option, "unknown option; " + one_of(option, options))
        return ConfigError(str(exc.missing_cfg_file), UNSET, "no such config file")
    if isinstance(exc, OverrideParseException):
        return ConfigError("override", exc.override, "cannot be parsed: " + str(exc.message).splitlines()[0])
    cause = exc
    while cause.__cause__ is not None and not isinstance(cause, (ValidationError, ConfigKeyError)):
        cause = cause.__cause__
    if isinstance(cause, ValidationError):
        return ConfigError(str(cause.full_key), cause.value if hasattr(cause, "value") else None,
                           type_message(cause))
    if isinstance(cause, ConfigKeyError):
        full = str(cause.full_key or cause.key)
        parent, _, leaf = full.rpartition(".")
        if parent == "regularization" and leaf in regularization_sections():
            return section_not_enabled(leaf)
        known = _keys_of(base, parent)
        where = parent or "the config"
        return ConfigError(full, UNSET, f"unknown key in {where}; "
                           + (one_of(leaf, known) if known else "see `dlrun train --cfg job`"))
    text = str(exc).strip().splitlines()
    if text and text[0].startswith("Could not override"):
        # "Could not override 'foo'. ... Key 'foo' is not in struct"
        key = text[0].split("'")[1]
        parent, _, leaf = key.rpartition(".")
        if parent == "regularization" and leaf in regularization_sections():
            return section_not_enabled(leaf)
        known = _keys_of(base, parent)
        return ConfigError(key, UNSET, "unknown key; " + (one_of(leaf, known) if known else
                           "append new keys with +key=value"))
    if text and "Multiple values for" in text[0]:
        return ConfigError("override", UNSET, text[0])
    return ConfigError("config", UNSET, " ".join(t.strip() for t in text if t.strip()) or repr(exc))


def type_message(err: ValidationError) -> str:
    msg = str(err.msg)
    for kind, word in (("Float", "a number"), ("Integer", "an integer"), ("Boolean", "true or false"),
                       ("str", "a string")):
        if f"converted to {kind}" in msg:
            return f"must be {word}"
    return msg.splitlines()[0]


def _check_single_choice(overrides: Sequence[str], config_name: str) -> None:
    """`optimizer=[adam,sgd]` is a list where one option is expected (only
    regularization combines several); say so rather than show Hydra's merge error."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key in root_groups(config_name) and key not in MULTI_CHOICE_GROUPS and value.startswith("["):
            raise ConfigError(key, value, "takes one option; to try several, sweep with "
                              f"-m {key}={value.strip('[]')}")


def compose(config_name: str, overrides: Sequence[str], extra_dirs: Sequence[str] = (),
            keep_hydra: bool = False) -> DictConfig:
    """Compose `config_name` with `overrides` (already normalized), searching the user's
    folders (`--config-dir`) after dlrun's own, as `hydra.main` does. Returns the config
    without Hydra's node (unless `keep_hydra`), once that node is checked to import
    nothing outside Hydra's own plugins and allowed_imports. Raises ConfigError."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from dlrun.config.schema import register_configs

    register_configs()
    _check_single_choice(overrides, config_name)
    search_path = create_config_search_path(conf_dir())
    for folder in extra_dirs:
        if not os.path.isdir(folder):
            raise ConfigError("--config-dir", folder, "no such folder")
        search_path.prepend(provider="command-line", path=f"file://{os.path.abspath(folder)}",
                            anchor=SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(task_name="dlrun", config_search_path=search_path)

    def run(items: Sequence[str], keep: bool = False) -> DictConfig:
        cfg = hydra.compose_config(config_name=config_name, overrides=list(items), run_mode=RunMode.RUN,
                                   with_log_configuration=False)
        if not keep:
            drop_hydra(cfg)
        return cfg

    try:
        cfg = run(overrides, keep=True)
    except Exception as exc:  # noqa: BLE001 - translated to one line below
        base = None
        with contextlib.suppress(Exception):
            base = run([o for o in overrides if o.startswith("hydra.")])
        raise translate(exc, extra_dirs, base, overrides) from exc
    finally:
        GlobalHydra.instance().clear()
    _check_imports(cfg, hydra.config_loader.repository)
    return cfg if keep_hydra else drop_hydra(cfg)


def drop_hydra(cfg: DictConfig) -> DictConfig:
    """`cfg` without Hydra's own node (in place)."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def _check_imports(cfg: DictConfig, repository=None) -> None:
    from dlrun.config.imports import DEFAULT, KEY, check_hydra_node, check_list

    value = cfg.get(KEY, list(DEFAULT))
    prefixes = check_list(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    if "hydra" in cfg:
        node = OmegaConf.to_container(cfg.hydra, resolve=False)
        try:
            check_hydra_node(node, prefixes)
        except ConfigError:  # perhaps what a chosen plugin option declares itself: look it up only now
            if repository is None:
                raise
            check_hydra_node(node, prefixes, plugin_imports(cfg, repository))


def plugin_imports(cfg: DictConfig, repository) -> set:
    """(key, dotted path) of what the options chosen for Hydra's own groups (hydra/sweeper:
    optuna, hydra/sweeper/sampler: tpe, hydra/launcher: ...) declare in their own configs,
    where those configs come from Hydra or an installed plugin (the ConfigStore or a
    plugin's search path), never from dlrun's or a user's config folder."""
    from hydra._internal.utils import create_config_search_path

    from dlrun.config.imports import declared_imports

    installed = {entry.provider for entry in create_config_search_path(None).get_path()}
    choices = OmegaConf.select(cfg, "hydra.runtime.choices") or {}
    out: set = set()
    for group, option in choices.items():
        if not str(group).startswith("hydra/") or not option:
            continue
        try:
            found = repository.load_config(f"{group}/{option}")
        except Exception:  # noqa: BLE001 - an option that does not load declares nothing
            continue
        if found is None or not (found.is_schema_source or found.provider in installed):
            continue
        package = found.header.get("package") or "_group_"
        package = "" if package == "_global_" else package.replace("_group_", str(group).replace("/", "."))
        package = package.removeprefix("_global_.").replace("_name_", str(option))
        out |= declared_imports(OmegaConf.to_container(found.config, resolve=False), package)
    return out
