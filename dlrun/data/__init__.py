"""Data: load a table (bundled data set or the user's file) and prepare the
train/validation/test arrays. pandas and scikit-learn only: no TensorFlow, so
data errors are found before anything heavy is imported. The package imports
pandas only when its contents are first used (dlrun.data.paths needs none)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from dlrun.config.schema import DataConfig
    from dlrun.data.prepare import DataBundle, DataMeta

_CACHE: Dict[str, "DataBundle"] = {}


def build_data(cfg: "DataConfig", image: bool = False, source: bool = False) -> "DataBundle":
    """The prepared data for `cfg`. Built once per process and config: the CLI's
    preflight check and the run that follows (or every trial of a search) share it.
    `image=False` drops `image_shape` so that dense models get flat rows; `source=True`
    also keeps the feature columns as read (for explanations in the user's units)."""
    import dataclasses

    from dlrun.data.prepare import prepare
    from dlrun.data.sources import load_frame

    if not image and cfg.image_shape is not None:
        cfg = dataclasses.replace(cfg, image_shape=None)
    key = repr((cfg, source, _stamp(cfg.path)))
    if key not in _CACHE:
        frame, target, natural_task = load_frame(cfg)
        _CACHE[key] = prepare(frame, target, natural_task, cfg, keep_source=source)
    return _CACHE[key]


def _stamp(path: "str | None") -> "tuple | None":
    """The data file's size and modification time: a file rewritten in place is read again."""
    import os

    if not path:
        return None
    try:
        stat = os.stat(os.path.expanduser(str(path)))
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def __getattr__(name: str) -> Any:  # DataBundle, DataMeta: imported with pandas, on first use
    if name in ("DataBundle", "DataMeta"):
        import importlib

        return getattr(importlib.import_module("dlrun.data.prepare"), name)
    raise AttributeError(f"module 'dlrun.data' has no attribute {name!r}")


__all__ = ["build_data", "DataBundle", "DataMeta"]
