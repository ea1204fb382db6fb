"""Turn a composed DictConfig into a validated RunConfig, once, right after
composition. Every range check lives in the schema's __post_init__ methods."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from dlrun.config.compose import section_not_enabled, type_message
from dlrun.config.imports import DEFAULT, KEY, check_import, check_list
from dlrun.config.schema import IMAGE_MODELS, LOSSES, SCHEMAS, SEQUENCE_MODELS, LossConfig, RunConfig
from dlrun.errors import UNSET, ConfigError, one_of

GROUPS = ("data", "model", "optimizer", "schedule", "loss", "regularization", "trainer")
OPTIONAL_GROUPS = ("diagnostics", "logger", "augmentation")  # schema defaults when a config (an older best.yaml) leaves them out
ROOT_KEYS = {"name", "allowed_imports", "optimized_metric", "search", "space", "study", *GROUPS,
             *OPTIONAL_GROUPS}  # search, space: tune; study: compare


def _schema_for(group: str, node: Any) -> type:
    options = SCHEMAS[group]
    if "default" in options and len(options) == 1:
        return options["default"]
    name = node.get("name") if isinstance(node, DictConfig) else None
    if group == "loss":
        if name not in LOSSES:
            raise ConfigError(f"{group}.name", name, one_of(str(name), LOSSES))
        return options.get(name, LossConfig)
    if name not in options:
        raise ConfigError(f"{group}.name", name, one_of(str(name), options))
    return options[name]


def to_object(group: str, node: Any, schema: Optional[type] = None) -> Any:
    """Merge `node` into its schema (by default: the group's option it names) and build the
    dataclass (runs __post_init__)."""
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, "must be a config section (choose it with "
                          f"{group}=OPTION)")
    schema = schema or _schema_for(group, node)
    fields = [f.name for f in dataclasses.fields(schema)]
    extra = [str(k) for k in node.keys() if k not in fields]
    if extra:
        raise _unknown_key(group, extra[0], node, fields)
    try:
        typed = node if OmegaConf.get_type(node) is schema else OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(typed)
    except ConfigError as err:
        raise err.prefixed(group) from None
    except MissingMandatoryValue as err:
        raise ConfigError(f"{group}.{err.full_key}".replace(f"{group}.{group}.", f"{group}."), None,
                          f"required: set {group}.{str(err.full_key).split('.')[-1]}=...") from None
    except ConfigKeyError as err:
        raise _unknown_key(group, str(err.key), node, fields) from None
    except ValidationError as err:
        key = str(err.full_key)
        key = key if key.startswith(group + ".") else f"{group}.{key}"
        raise ConfigError(key, getattr(err, "value", None), type_message(err)) from None
    except OmegaConfBaseException as err:
        raise ConfigError(group, UNSET, str(err).splitlines()[0]) from None


def _unknown_key(group: str, leaf: str, node: DictConfig, fields: list) -> ConfigError:
    if group == "regularization" and leaf in fields:
        return section_not_enabled(leaf)
    what = f"{group} '{node.get('name')}'" if "name" in node else group
    return ConfigError(f"{group}.{leaf}", UNSET, f"unknown key for {what}; " + one_of(leaf, fields))


def validate(cfg: DictConfig) -> RunConfig:
    """Check the whole composed config; raise one ConfigError for the first bad value."""
    unknown = [str(k) for k in cfg.keys() if k not in ROOT_KEYS and k != "hydra"]
    if unknown:
        raise ConfigError(unknown[0], UNSET, "unknown top-level key; " + one_of(unknown[0], ROOT_KEYS))
    parts: Dict[str, Any] = {}
    for group in GROUPS:
        if group not in cfg or cfg[group] is None:
            raise ConfigError(group, None, f"required: choose one with {group}=OPTION")
        parts[group] = to_object(group, cfg[group])
    for group in OPTIONAL_GROUPS:
        if cfg.get(group) is not None:
            parts[group] = to_object(group, cfg[group])
    imports = cfg.get(KEY, list(DEFAULT))
    run = RunConfig(name=check_name(cfg.get("name", "default")), **parts,
                    allowed_imports=check_list(OmegaConf.to_container(imports) if OmegaConf.is_config(imports)
                                               else imports),
                    optimized_metric=check_optimized_metric(cfg.get("optimized_metric", "val_loss")))
    _check_across_groups(run)
    return run


def check_name(name: Any) -> str:
    """The experiment name names a folder under the output root: no path in it."""
    text = str(name)
    if not text.strip() or "/" in text or "\\" in text or ".." in text or text == "." or "\0" in text:
        raise ConfigError("name", name, "must be a plain folder name (no '/', '\\' or '..'): runs are "
                          "written to experiments/<name>/")
    return text


def check_optimized_metric(value: Any) -> str:
    """A metric name; whether the model produces it is checked with the data (preflight)."""
    if not isinstance(value, str) or not value:
        raise ConfigError("optimized_metric", value, "must be <split>_<metric>, e.g. val_loss or val_accuracy")
    return value


def _check_across_groups(run: RunConfig) -> None:
    """Checks that involve more than one group (and need no data)."""
    if run.loss.name == "custom":
        check_import("loss.function", run.loss.function, run.allowed_imports)
    images = run.data.image_shape is not None or run.data.name == "images"
    if run.model.name in IMAGE_MODELS and not images:
        if run.model.name == "transfer":
            raise ConfigError("model", "transfer", f"needs image data; data={run.data.name} is a table. Use "
                              "data=images data.path=DIR, or data=cifar10, fashion_mnist, mnist or digits")
        raise ConfigError("data.image_shape", None, f"model={run.model.name} needs image data: set data.image_shape, "
                          "e.g. [8, 8, 1] (data=digits sets it)")
    text = run.data.text is not None
    if run.model.name in SEQUENCE_MODELS and not (text or images):
        raise ConfigError("model", run.model.name, f"reads sequences; data={run.data.name} has neither a text column "
                          "nor images. Set data.text=COLUMN (a column of free text, e.g. data=reviews) or use image "
                          "data (data.image_shape, e.g. data=digits: 8 rows of 8 pixels)")
    if text and run.model.name not in SEQUENCE_MODELS:
        raise ConfigError("model", run.model.name, f"cannot read the text column data.text={run.data.text}; use "
                          f"model={', '.join(SEQUENCE_MODELS[:-1])} or {SEQUENCE_MODELS[-1]} (or data.text=null)")
    reads_images = run.model.name in IMAGE_MODELS or (run.model.name in SEQUENCE_MODELS and not text)
    if run.augmentation.active and not reads_images:
        raise ConfigError("augmentation", run.augmentation.name, f"changes images; model={run.model.name} reads "
                          f"{'text' if text else 'rows of features'}. Use image data with model=cnn, transfer or "
                          "attention, or augmentation=none")


def to_container(run: RunConfig) -> Dict[str, Any]:
    """The validated config as plain dicts (for saving next to the results)."""
    return dataclasses.asdict(run)

