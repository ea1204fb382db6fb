"""The fitted preprocessing of a run, saved next to its model so that `dlrun
predict` can apply it to new rows.

Two files: `preprocessing.skops` holds the fitted scikit-learn ColumnTransformer
(imputers, encoders, scalers) in skops' format, which, unlike pickle, runs no code
when loaded and refuses any type it is not told to trust; `preprocessing.json`
holds what is not an estimator (columns, task, class labels, threshold, target,
and a text run's text column and sequence length)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from dlrun.config.schema import DataConfig
from dlrun.errors import DataError

TRANSFORMER_FILE = "preprocessing.skops"
INFO_FILE = "preprocessing.json"
FORMAT = 1
# What a dlrun preprocessing file may contain besides the types skops trusts by default.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "dlrun.data.encoders.", "dlrun.data.text.", "builtins.")


def save(run_dir: Path, cfg: DataConfig, bundle: Any, threshold: Optional[float], output: str) -> None:
    """Write preprocessing.skops and preprocessing.json into `run_dir` (atomically).
    `output`: what a classifier's output is ('probability', or 'margin' for hinge)."""
    import skops.io as sio

    from dlrun.results import rundir

    prep, meta = bundle.preprocessing, bundle.meta
    if prep is None:
        _save_images(run_dir, cfg, bundle, threshold, output)
        return
    with rundir.atomic_path(Path(run_dir) / TRANSFORMER_FILE) as tmp:
        sio.dump(prep.transformer, tmp)
    info = _info(cfg, meta, threshold, output)
    info["data"]["missing"] = cfg.missing
    info.update(columns=prep.columns, numeric=prep.numeric, text=prep.text,
                dropped_columns=meta.report.get("dropped_columns", []))
    if getattr(meta, "text", None) is not None:  # data.text: read as text (a missing one is an empty sequence)
        info.update(text_column=meta.text.column, sequence_length=meta.text.length)
    rundir.write_json(Path(run_dir) / INFO_FILE, info)


def _info(cfg: DataConfig, meta: Any, threshold: Optional[float], output: str) -> Dict[str, Any]:
    """What every preprocessing.json holds: the data it was fitted on (dlrun explain: the
    same data?), and what the model's inputs and outputs are."""
    return {"format": FORMAT,
            "data": {"name": cfg.name, "path": meta.report.get("path"),
                     "fingerprint": meta.report.get("fingerprint"), "rows": dict(meta.rows)},
            "target": meta.target, "task": meta.task, "classes": list(meta.classes),
            "positive_class": meta.positive_class, "threshold": threshold, "output": output,
            "input_shape": list(meta.input_shape),
            "target_scale": list(meta.target_scale) if meta.target_scale else None}


def _save_images(run_dir: Path, cfg: DataConfig, bundle: Any, threshold: Optional[float], output: str) -> None:
    """A folder-of-images run has no fitted preprocessing: preprocessing.json says how its
    images are read (size, channels) and what its outputs mean."""
    from dlrun.data.images import ImageFiles
    from dlrun.results import rundir

    x, meta = bundle.x_train, bundle.meta
    if not isinstance(x, ImageFiles):
        return
    info = {**_info(cfg, meta, threshold, output), "kind": "images",
            "image_size": list(x.size), "channels": x.channels, "flat": x.flat}
    rundir.write_json(Path(run_dir) / INFO_FILE, info)


def load(run_dir: Path) -> Dict[str, Any]:
    """The saved preprocessing of `run_dir`: its info, with the fitted transformer under
    'transformer'. Raises DataError for a missing, foreign or untrusted file."""
    import skops.io as sio

    run_dir = Path(run_dir).resolve()
    info_path, transformer_path = run_dir / INFO_FILE, run_dir / TRANSFORMER_FILE
    for path in (info_path, transformer_path):
        _inside(path, run_dir)
    _present(info_path, run_dir)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{info_path}: cannot be read ({err})") from None
    if info.get("format") != FORMAT:
        raise DataError(f"{info_path}: format {info.get('format')!r}, this dlrun reads {FORMAT}")
    if info.get("kind") == "images":  # a folder of images: nothing fitted to load
        return info
    _present(transformer_path, run_dir)
    try:
        untrusted = sio.get_untrusted_types(file=transformer_path)
    except Exception as err:  # noqa: BLE001 - any failure to read means: not a skops file we wrote
        raise DataError(f"{transformer_path}: not a preprocessing file dlrun can read ({type(err).__name__})") from None
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise DataError(f"{transformer_path}: refused to load; it holds types dlrun did not write: "
                        + ", ".join(foreign[:5]))
    info["transformer"] = sio.load(transformer_path, trusted=untrusted)
    return info


def _present(path: Path, run_dir: Path) -> None:
    if not path.is_file():
        raise DataError(f"{run_dir}: no {path.name}; it was trained before dlrun saved its preprocessing, or "
                        "without a model (trainer.save_model=false). Train it again to predict with it")


def _inside(path: Path, run_dir: Path) -> None:
    """Refuse a file that is a link out of the run folder."""
    if path.is_symlink() and run_dir not in path.resolve().parents:
        raise DataError(f"{path}: refused: it links to {path.resolve()}, outside the run folder")

