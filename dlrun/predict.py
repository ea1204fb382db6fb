"""`dlrun predict RUN_DIR FILE`: apply a trained run (its model and its fitted
preprocessing) to new rows, and write the predictions in the file's own labels
and units, next to the columns the file already had.

Every check that can fail (the run folder, its files, the table, its columns,
its values) runs before TensorFlow is imported, so bad input answers at once
with one line and exit code 2, and nothing is written."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from dlrun.data.prepare import as_numbers
from dlrun.errors import DataError, DlrunError, closest

PREDICTIONS_DIR = "predictions"  # default output: RUN_DIR/predictions/<file stem>.csv
MODEL_FILES = ("model.keras", "best_model.keras")  # a train run's model, a search's refit best model


class PredictError(DlrunError):
    """The run folder cannot be used to predict."""


@dataclass
class Predictions:
    frame: pd.DataFrame                # the input rows with the prediction columns added
    out: Path
    target: str
    task: str
    metrics: Dict[str, float]          # when the file holds the target: scores on these rows
    model_path: Path


# ------------------------------------------------------------------ checks
def model_path(run_dir: Path) -> Path:
    """The model of a train run (model.keras) or of a search (best_model.keras)."""
    if not run_dir.is_dir():
        raise PredictError(f"{run_dir}: no such run folder" if not run_dir.exists() else f"{run_dir}: not a folder")
    for name in MODEL_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    if (run_dir / "search.json").is_file():
        raise PredictError(f"{run_dir}: the search has no best_model.keras (it was run with search.refit=false, "
                           "or no trial completed); refit it with dlrun train --config-dir "
                           f"{run_dir} --config-name best")
    if (run_dir / "metrics.json").is_file():
        import json

        status = json.loads((run_dir / "metrics.json").read_text()).get("status", "unknown")
        raise PredictError(f"{run_dir}: the run has no model.keras (status {status}"
                           + ("; it was trained with trainer.save_model=false" if status == "completed" else "")
                           + ")")
    raise PredictError(f"{run_dir}: not a dlrun run folder (no model.keras, metrics.json or search.json)")


def known_categories(transformer: Any) -> Dict[str, List[Any]]:
    """Text column -> the categories its fitted encoder knows (one-hot and ordinal
    encoders; hashed columns take any value)."""
    out: Dict[str, List[Any]] = {}
    for _, step, columns in getattr(transformer, "transformers_", []):
        encoders = [s for s in getattr(step, "steps", [(None, step)]) if hasattr(s[1], "categories_")]
        for _, encoder in encoders:
            for col, cats in zip(columns, encoder.categories_):
                out[str(col)] = [c for c in cats if not (isinstance(c, float) and c != c)]
    return out


def _rows(index: Sequence[int], limit: int = 3) -> str:
    shown = ", ".join(str(i + 1) for i in list(index)[:limit])
    return shown + (f" and {len(index) - limit} more" if len(index) > limit else "")


def feature_frame(frame: pd.DataFrame, info: Dict[str, Any], file: str, allow_unseen: bool) -> pd.DataFrame:
    """The feature columns of `frame` in the run's order and types, checked. Raises DataError."""
    columns = info["columns"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        hints = [f"{c!r} (did you mean {closest(c, frame.columns)!r}?)" if closest(c, frame.columns) else repr(c)
                 for c in missing[:5]]
        raise DataError(f"{file}: missing feature column(s) the run was trained on: {', '.join(hints)}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    x = frame[columns].copy()
    numeric = info["numeric"]
    for col in numeric:
        values = pd.to_numeric(x[col], errors="coerce")
        bad = x[col].notna() & values.isna()
        if bad.any():
            raise DataError(f"{file}: column {col!r} must hold numbers; data row {_rows(np.flatnonzero(bad))} "
                            f"holds {x[col][bad].iloc[0]!r}")
        x[col] = values
    as_numbers(x, numeric, where=file)
    text = info.get("text_column")  # data.text: free text, never a category; a missing text is an empty sequence
    if info["data"].get("missing") != "impute":
        features = x[[c for c in x.columns if c != text]]
        gaps = features.isna().any(axis=1)
        if gaps.any():
            col = features.columns[int(np.argmax(features[gaps].isna().any(axis=0).to_numpy()))]
            raise DataError(f"{file}: data row {_rows(np.flatnonzero(gaps))} has missing values (e.g. in {col!r}); "
                            f"the run was trained with data.missing={info['data'].get('missing')}: fill them")
    if not allow_unseen:
        for col, cats in known_categories(info["transformer"]).items():
            if col == text:
                continue
            known = {str(c) for c in cats}
            values = x[col].dropna()
            unseen = values[~values.astype(str).isin(known)]
            if len(unseen):
                examples = ", ".join(repr(v) for v in unseen.unique()[:3])
                listed = ", ".join(str(c) for c in cats[:8]) + (" ..." if len(cats) > 8 else "")
                raise DataError(f"{file}: column {col!r} holds value(s) the run never saw: {examples} (data row "
                                f"{_rows([frame.index.get_loc(i) for i in unseen.index])}); known: {listed}. "
                                "Pass --allow-unseen to predict them as no known category")
    return x


def transform(x: pd.DataFrame, info: Dict[str, Any], file: str) -> np.ndarray:
    """The model's input rows for `x` (fitted preprocessing applied, image-shaped if the model is)."""
    arr = np.asarray(info["transformer"].transform(x), dtype="float32")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        col = x.columns[int(np.argmax(x[bad].isna().any(axis=0).to_numpy()))]
        raise DataError(f"{file}: data row {_rows(np.flatnonzero(bad))} has missing values (e.g. in {col!r}) where "
                        "the training data had none, so the run has nothing fitted to fill them: fill them")
    shape = tuple(info["input_shape"])
    return arr.reshape(-1, *shape) if len(shape) > 1 else arr


def output_path(run_dir: Path, file: Path, out: Optional[str]) -> Path:
    """Where predictions go: --out, or RUN_DIR/predictions/<file stem>.csv. Never the input file."""
    path = Path(out).expanduser() if out else run_dir / PREDICTIONS_DIR / f"{file.stem}.csv"
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise PredictError(f"--out={path}: write .csv or .parquet")
    if path.exists() and path.resolve() == file.resolve():
        raise PredictError(f"--out={path}: is the input file; choose another path (nothing is overwritten)")
    return path


# ------------------------------------------------------------------ predicting
def prediction_columns(outputs: np.ndarray, info: Dict[str, Any]) -> pd.DataFrame:
    """The model's outputs as columns in the user's labels and units:
    predicted_<target>, and probability_<class> for each class (or score_<class>)."""
    target, task, classes = info["target"], info["task"], info["classes"]
    outputs = np.asarray(outputs, dtype="float64")
    if task == "regression":
        return pd.DataFrame({f"predicted_{target}": outputs.reshape(len(outputs), -1)[:, 0]})
    if task == "binary":
        score = outputs.reshape(-1)
        threshold = info.get("threshold")
        threshold = (0.0 if info.get("output") == "margin" else 0.5) if threshold is None else float(threshold)
        labels = np.asarray(classes, dtype=object)[(score >= threshold).astype(int)]
        if info.get("output") == "margin":
            return pd.DataFrame({f"predicted_{target}": labels, f"score_{classes[1]}": score})
        return pd.DataFrame({f"predicted_{target}": labels, f"probability_{classes[0]}": 1.0 - score,
                             f"probability_{classes[1]}": score})
    labels = np.asarray(classes, dtype=object)[outputs.argmax(axis=1)]
    cols = {f"predicted_{target}": labels}
    cols.update({f"probability_{c}": outputs[:, i] for i, c in enumerate(classes)})
    return pd.DataFrame(cols)


def scores_against_target(frame: pd.DataFrame, predicted: pd.DataFrame, info: Dict[str, Any]) -> Dict[str, float]:
    """When the file holds the target: accuracy (classes) or MAE/RMSE (numbers) on the rows that have it."""
    target = info["target"]
    if target not in frame.columns:
        return {}
    truth, guess = frame[target], predicted[f"predicted_{target}"]
    have = truth.notna().to_numpy()
    if not have.any():
        return {}
    if info["task"] == "regression":
        err = pd.to_numeric(truth[have], errors="coerce").to_numpy() - guess[have].to_numpy()
        return {"rows": int(have.sum()), "mae": float(np.nanmean(np.abs(err))),
                "rmse": float(np.sqrt(np.nanmean(err ** 2)))}
    hit = truth[have].astype(str).to_numpy() == guess[have].astype(str).to_numpy()
    return {"rows": int(have.sum()), "accuracy": float(hit.mean())}


def predict(run_dir: Path, file: str, out: Optional[str] = None, allow_unseen: bool = False) -> Predictions:
    """Predict every row of `file` with the run in `run_dir` and write the result (atomically)."""
    from dlrun.data.saved import load
    from dlrun.data.sources import read_table

    run_dir = Path(run_dir)
    path = model_path(run_dir)
    info = load(run_dir)
    if info.get("kind") == "images":
        return predict_images(run_dir, path, info, file, out)
    frame = read_table(file, key="", min_columns=1)  # a model of one text column reads one column
    frame.columns = [str(c) for c in frame.columns]
    target_path = output_path(run_dir, Path(file), out)
    x = transform(feature_frame(frame, info, file, allow_unseen), info, file)

    from dlrun.runtime import import_tensorflow

    import_tensorflow()
    model = load_model(path)
    outputs = model.predict(x, batch_size=2048, verbose=0)
    predicted = prediction_columns(outputs, info)
    result = pd.concat([frame.reset_index(drop=True), predicted], axis=1)
    _write(result, target_path)
    return Predictions(frame=result, out=target_path, target=info["target"], task=info["task"],
                       metrics=scores_against_target(frame, predicted, info), model_path=path)


def load_model(path: Path) -> Any:
    """The saved model, uncompiled. The sequence models' layers (dlrun/models/sequence_layers.py)
    are registered with Keras when their module is imported: import it first."""
    import importlib

    import keras

    importlib.import_module("dlrun.models.sequence_layers")  # registers TokenEmbedding and the other sequence layers
    return keras.models.load_model(path, compile=False)


def predict_images(run_dir: Path, path: Path, info: Dict[str, Any], file: str, out: Optional[str]) -> Predictions:
    """Predict an image file, or every image under a folder, with a folder-of-images run:
    one row per image (its path first). An image inside a subfolder named after a class
    is scored against that class."""
    from dlrun.data.images import ImageFiles, image_files_at
    from dlrun.runtime import import_tensorflow
    from dlrun.training import scores_of

    paths, unreadable = image_files_at(file, key="FILE")
    target_path = output_path(run_dir, Path(file).expanduser().resolve(), out)  # a folder's own name, even for '.'
    classes = [str(c) for c in info["classes"]]
    frame = pd.DataFrame({"file": paths})
    parents = [Path(p).parent.name for p in paths]
    if info["task"] != "regression" and any(name in classes for name in parents):
        frame[info["target"]] = [name if name in classes else None for name in parents]
    import_tensorflow()
    model = load_model(path)
    x = ImageFiles(np.asarray(paths), tuple(info["image_size"]), int(info["channels"]), bool(info.get("flat")))
    predicted = prediction_columns(scores_of(model, x), info)
    result = pd.concat([frame, predicted], axis=1)
    _write(result, target_path)
    metrics = scores_against_target(frame, predicted, info)
    if unreadable:
        metrics["unreadable_images"] = len(unreadable)
    return Predictions(frame=result, out=target_path, target=info["target"], task=info["task"],
                       metrics=metrics, model_path=path)


def _write(frame: pd.DataFrame, path: Path) -> None:
    from dlrun.results.tables import write_table

    write_table(frame, path.with_suffix(""), (path.suffix.lower().lstrip("."),))
