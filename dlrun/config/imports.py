"""What a config may import. Configs may come from others, so a config never runs
code by itself: a dotted path (loss.function) is imported only from the modules
listed in the top-level key `allowed_imports` (default: dlrun and keras), and the
Hydra settings a config carries may only name Hydra's own plugins, the standard
logging handlers, and what an installed plugin's own config declares for the
option chosen (hydra/sweeper=optuna: its sampler). Checked right after
composition, before TensorFlow."""
from __future__ import annotations

import re
from typing import Any, Collection, Iterator, List, Sequence, Set, Tuple

from dlrun.errors import ConfigError

KEY = "allowed_imports"
DEFAULT = ("dlrun", "keras")
# What Hydra itself instantiates or imports from its own node (launchers, sweepers,
# callbacks, logging): always allowed, together with the user's allowed_imports.
HYDRA_OWN = ("hydra._internal.core_plugins", "hydra_plugins", "hydra.experimental.callbacks",
             "logging.StreamHandler", "logging.FileHandler", "logging.Formatter", "logging.handlers",
             "sys.stdout", "sys.stderr")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_list(value: Any) -> List[str]:
    """allowed_imports as a list of module names. Raises ConfigError."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and MODULE.match(v) for v in value):
        raise ConfigError(KEY, value, "must be a list of module names, e.g. [dlrun,keras,mypkg]")
    return list(value)


def allowed(path: str, prefixes: Sequence[str]) -> bool:
    """Whether dotted `path` lies in one of the modules `prefixes` (a prefix matches
    whole names: 'keras' allows keras.losses.mse, not kerasx.f)."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def check_import(key: str, path: str, prefixes: Sequence[str]) -> None:
    """Raise a ConfigError naming `key`, `path` and how to allow it, unless allowed."""
    if allowed(path, prefixes):
        return
    top = path.split(".", 1)[0]
    listed = ",".join([*prefixes, top])
    raise ConfigError(key, path, f"imports from '{top}', which {KEY} does not list "
                      f"({', '.join(prefixes) or 'nothing'}); if you trust it, add {KEY}=[{listed}]")


def _imports(node: Any, where: str) -> Iterator[Tuple[str, str]]:
    """(key, dotted path) of everything Hydra would import from `node`: `_target_`
    (instantiate), and logging's `class`, `()` and `ext://` values."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key in ("_target_", "class", "()") and isinstance(value, str):
                yield here, value
            else:
                yield from _imports(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _imports(value, f"{where}[{i}]")
    elif isinstance(node, str) and node.startswith("ext://"):
        yield where, node[len("ext://"):]


def declared_imports(node: Any, package: str) -> Set[Tuple[str, str]]:
    """(key, dotted path) of what a config `node` placed at `package` ('' for the root)
    would make Hydra import: what a plugin's own config declares, where it declares it."""
    return set(_imports(node, package))


def check_hydra_node(hydra: Any, prefixes: Sequence[str], trusted: Collection[Tuple[str, str]] = ()) -> None:
    """Refuse a Hydra node (launcher, sweeper, callbacks, logging) that would import
    code from outside Hydra's own plugins and `prefixes`. `hydra` is a plain container.
    `trusted`: (key, path) pairs that the chosen options of an installed Hydra plugin
    declare in its own config (e.g. hydra/sweeper/sampler=tpe: optuna.samplers.TPESampler
    at hydra.sweeper.sampler._target_); the same key with another path is still checked."""
    for key, path in _imports(hydra, "hydra"):
        if (key, path) not in trusted and not allowed(path, [*HYDRA_OWN, *prefixes]):
            check_import(key, path, prefixes)
