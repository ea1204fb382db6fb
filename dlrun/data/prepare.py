"""From a raw table to model-ready arrays: columns that cannot help, missing
values, encoding, the train/validation/test split, scaling (of the features, and
of a regression target) and resampling. Everything that learns from data
(imputer, encoder, scaler, target scaler, resampler) is fitted on the training
split only, and the fitted preprocessing travels with the data so that a run can
save it for `dlrun predict`. A column of free text (data.text) is neither dropped,
imputed nor one-hot encoded: its token ids (dlrun/data/text.py) end each row."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import DataConfig
from dlrun.data.columns import is_text as _is_text
from dlrun.data.columns import plan_columns
from dlrun.errors import DataError

MAX_CLASSES_FOR_INTEGER_TARGET = 20  # an integer target with more distinct values is regression


@dataclass
class TextLayout:
    """Where a text column's tokens are in each prepared row. A row is
    [other features..., token ids...]: the ids (float32, exact) follow the `offset`
    other feature columns; 0 pads a short text, 1 is a word outside the vocabulary."""
    column: str                        # the text column (data.text)
    offset: int                        # columns before the first token id
    length: int                        # token ids per row (data.sequence_length, resolved)
    vocabulary: List[str]              # id -> token: ["", "[UNK]", most frequent word, ...]

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def words(self, row: np.ndarray) -> List[str]:
        """One prepared row's token ids as words, one per position ('' for padding; an id
        outside the vocabulary reads as '[UNK]', as the model reads it)."""
        ids = np.rint(np.asarray(row, dtype="float64").ravel()[self.offset:self.offset + self.length]).astype("int64")
        return ["" if i == 0 else self.vocabulary[i] if 0 < i < len(self.vocabulary) else self.vocabulary[1]
                for i in ids]

    def tokens(self, row: np.ndarray) -> List[str]:
        """The tokens of one prepared row (padding left out)."""
        return [w for w in self.words(row) if w]


@dataclass
class DataMeta:
    """What the model builder and the report need to know about the data."""
    task: str                          # binary | multiclass | regression
    n_outputs: int                     # units of the output layer
    input_shape: Tuple[int, ...]       # per-row shape fed to the model
    feature_names: List[str]
    target: str
    classes: List[Any] = field(default_factory=list)  # original class labels, in label order
    rows: Dict[str, int] = field(default_factory=dict)  # rows per split
    report: Dict[str, Any] = field(default_factory=dict)  # filled values, dropped rows, encodings
    target_scale: Optional[Tuple[float, float]] = None  # regression: (mean, std) of the training target
    notes: List[str] = field(default_factory=list)  # one line each, shown before training
    text: Optional["TextLayout"] = None  # data.text: where each row's token ids are (see dlrun/data/text.py)

    @property
    def positive_class(self) -> Any:
        """The class a binary model's output is the probability of (label code 1)."""
        return self.classes[1] if self.task == "binary" and len(self.classes) == 2 else None


@dataclass
class Preprocessing:
    """The fitted feature preprocessing: what `dlrun predict` applies to new rows."""
    transformer: Any                   # fitted sklearn ColumnTransformer
    columns: List[str]                 # the file's columns it reads, in order
    numeric: List[str]                 # of those, the numeric ones (cast to float)
    text: List[str]                    # ... and the categorical text ones
    text_column: Optional[str] = None  # data.text: the column of free text read as token ids


@dataclass
class SourceRows:
    """The feature columns as read (before imputing, encoding and scaling) and each split's
    rows in them: what explanations in the user's own units work on. Kept on request only."""
    frame: pd.DataFrame                # the selected feature columns, every row
    index: Dict[str, np.ndarray]       # split (train | val | test) -> row positions in `frame`

    def rows(self, split: str) -> pd.DataFrame:
        return self.frame.iloc[self.index[split]]

    def data_rows(self, split: str) -> np.ndarray:
        """1-based row numbers of the split's rows in the data as read (a CSV file's data rows)."""
        labels = self.frame.index[self.index[split]]
        return np.asarray(labels, dtype="int64") + 1 if pd.api.types.is_integer_dtype(labels) \
            else np.asarray(self.index[split]) + 1


@dataclass
class DataBundle:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: DataMeta
    preprocessing: Optional[Preprocessing] = None
    source: Optional[SourceRows] = None  # prepare(keep_source=True) only


def infer_task(y: pd.Series, requested: str, natural: str) -> str:
    """The task from the config, else the source's, else from the target's values."""
    if requested != "auto":
        return requested
    if natural != "auto":
        return natural
    values = y.dropna()
    if _is_text(values) or pd.api.types.is_bool_dtype(values):
        return "binary" if values.nunique() == 2 else "multiclass"
    as_float = values.astype(float)
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)) \
            and values.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "binary" if values.nunique() == 2 else "multiclass"
    return "regression"


def _check_numeric_text(frame: pd.DataFrame, columns: List[str]) -> None:
    """A text column whose values are nearly all numbers is a data error, not a category."""
    for col in columns:
        values = frame[col].dropna().astype(str)
        if values.empty:
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        bad = values[parsed.isna()]
        if 0 < len(bad) <= 0.1 * len(values):
            examples = ", ".join(repr(v) for v in bad.unique()[:3])
            rows = ", ".join(str(i + 1) for i in bad.index[:3])
            raise DataError(f"data: column {col!r} is numeric except for {len(bad)} value(s) such as "
                            f"{examples} (data row {rows}); fix them, or leave them empty so that "
                            f"data.missing handles them")


def _select(frame: pd.DataFrame, cfg: DataConfig, target: str) -> Tuple[pd.DataFrame, pd.Series, Dict]:
    report: Dict[str, Any] = {"rows_read": int(len(frame)), "dropped_rows": 0, "filled_values": 0}
    if cfg.path:  # the file as resolved (a relative data.path depends on the folder dlrun ran in)
        report = {"path": str(Path(cfg.path).expanduser().resolve()), **report}
    text = cfg.text
    if text is not None:  # the text column is planned apart: never dropped, imputed or one-hot encoded
        from dlrun.data.text import check_text_column

        check_text_column(frame, text, str(target), cfg.path or f"data={cfg.name}")
    features = list(cfg.features) if cfg.features else [c for c in frame.columns if c != target]
    if text is not None and text not in features:
        features.append(text)
    if target in features:
        raise DataError(f"data.features: the target column {target!r} is also listed as a feature")
    if not features:
        raise DataError("data.features: no feature columns left besides the target")
    others = [c for c in features if c != text]
    x, y = frame[features].copy(), frame[target].copy()
    _check_numeric_text(x, [c for c in others if _is_text(x[c])])
    plan = plan_columns(x.loc[y.notna(), others], cfg, allow_empty=text is not None)
    others = plan.keep
    x = x[others + ([text] if text is not None else [])]  # the text column last: its ids end each row
    report.update(dropped_columns=plan.dropped, high_cardinality=plan.high_cardinality, notes=plan.notes)
    missing_target = int(y.isna().sum())
    if missing_target:
        if cfg.missing == "error":
            raise DataError(f"data: target column {target!r} has {missing_target} missing value(s); "
                            "set data.missing=impute or drop to drop those rows")
        keep = y.notna()
        x, y = x[keep], y[keep]
        report["dropped_rows"] += missing_target
    if cfg.missing == "drop":  # a missing text is an empty sequence, never a reason to drop the row
        keep = x[others].notna().all(axis=1)
        report["dropped_rows"] += int((~keep).sum())
        x, y = x[keep], y[keep]
    elif cfg.missing == "error":
        counts = x[others].isna().sum()
        if counts.any():
            col = counts[counts > 0].index[0]
            raise DataError(f"data: column {col!r} has {int(counts[col])} missing value(s); "
                            "set data.missing=impute or drop")
    if len(x) == 0:
        raise DataError("data: no rows left after dropping rows with missing values")
    return x, y, report


def _encode_target(y: pd.Series, task: str) -> Tuple[np.ndarray, List[Any]]:
    if task == "regression":
        try:
            values = pd.to_numeric(y, errors="raise").astype("float32").to_numpy()
        except (ValueError, TypeError):
            raise DataError(f"data.task=regression: target column {y.name!r} holds text; "
                            "use data.task=binary or multiclass") from None
        if not np.all(np.isfinite(values)):
            raise DataError(f"data: target column {y.name!r} has infinite values")
        return values, []
    if not _is_text(y) and np.all(y.astype(float) == np.round(y.astype(float))):
        y = y.astype("int64")  # integer labels read as floats (a column with gaps) stay integers
    classes, codes = np.unique(y.astype(str) if _is_text(y) else y, return_inverse=True)
    labels = [c.item() if hasattr(c, "item") else c for c in classes]
    if len(labels) < 2:
        raise DataError(f"data: target column {y.name!r} has a single class ({labels[0]!r}); "
                        "classification needs at least two")
    if task == "binary" and len(labels) != 2:
        raise DataError(f"data.task=binary: target column {y.name!r} has {len(labels)} classes; "
                        "use data.task=multiclass")
    return codes.astype("int32"), labels


def _split(n: int, y_codes: np.ndarray, task: str, cfg: DataConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Train/validation/test row indices, and whether both cuts were stratified."""
    from sklearn.model_selection import train_test_split

    stratified = []

    def cut(idx: np.ndarray, size: float, stratify: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        try:
            parts = train_test_split(idx, test_size=size, random_state=cfg.split_seed, stratify=stratify)
            stratified.append(stratify is not None)
            return parts
        except ValueError:  # a part too small to hold every class, or no rows left to train on
            if stratify is not None:
                return cut(idx, size, None)
            raise DataError(f"data: {n} rows are too few for the split (test_size={cfg.test_size}, "
                            f"val_size={cfg.val_size})") from None

    idx = np.arange(n)
    stratify = None
    if task != "regression":
        counts = np.bincount(y_codes)
        if counts.min() >= 3:
            stratify = y_codes
    rest, test = cut(idx, cfg.test_size, stratify)
    val_share = cfg.val_size / (1.0 - cfg.test_size)
    train, val = cut(rest, val_share, None if stratify is None else y_codes[rest])
    if cfg.train_rows is not None and cfg.train_rows < len(train):
        train = _fewer(train, cfg.train_rows, None if stratify is None else y_codes[train], cfg.split_seed)
    return train, val, test, all(stratified)


def _fewer(train: np.ndarray, rows: int, stratify: Optional[np.ndarray], seed: int) -> np.ndarray:
    """data.train_rows: a random subset of the training rows (stratified when every
    class can keep a row), for studies of overfitting and of how much data helps."""
    from sklearn.model_selection import train_test_split

    if stratify is not None and rows >= len(np.unique(stratify)):
        try:
            return np.sort(train_test_split(train, train_size=rows, random_state=seed, stratify=stratify)[0])
        except ValueError:  # a class with a single row cannot be stratified
            pass
    return np.sort(np.random.default_rng(seed).choice(train, size=rows, replace=False))


def _feature_transformer(x: pd.DataFrame, cfg: DataConfig, high_cardinality: Dict[str, str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

    from dlrun.data.encoders import HashEncoder

    columns = [c for c in x.columns if c != cfg.text]
    text_cols = [c for c in columns if _is_text(x[c])]
    num_cols = [c for c in columns if c not in text_cols]
    wide = [c for c in text_cols if c in high_cardinality]
    text_cols = [c for c in text_cols if c not in wide]
    if text_cols and cfg.categorical == "error":
        col = text_cols[0]
        sample = ", ".join(repr(v) for v in x[col].dropna().astype(str).unique()[:3])
        raise DataError(f"data: feature column {col!r} holds text ({sample}) and data.categorical=error; "
                        "set data.categorical=onehot or ordinal, or drop it from data.features")
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}.get(cfg.scaling)
    gaps = cfg.missing == "impute" and bool(x[num_cols].isna().to_numpy().any())
    # the median imputer is slow on wide data (MNIST: 7 s); it is only needed where values are missing
    numeric_steps = [SimpleImputer(strategy="median", keep_empty_features=True)] if gaps else []
    if scaler is not None:
        numeric_steps.append(scaler())
    impute_text = [SimpleImputer(strategy="most_frequent")] if cfg.missing == "impute" else []

    def ordinal() -> list:  # codes scaled like numbers: raw codes in the hundreds would swamp the rest
        return [OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)] + ([scaler()] if scaler else [])

    encoder = ([OneHotEncoder(handle_unknown="ignore", sparse_output=False)] if cfg.categorical == "onehot"
               else ordinal())
    parts = []
    if num_cols:
        parts.append(("num", make_pipeline(*numeric_steps) if numeric_steps else "passthrough", num_cols))
    if text_cols:
        parts.append(("text", make_pipeline(*impute_text, *encoder), text_cols))
    for kind in ("ordinal", "hash"):
        cols = [c for c in wide if high_cardinality[c] == kind]
        if cols:
            steps = ordinal() if kind == "ordinal" else [HashEncoder(cfg.hash_buckets)]
            parts.append((kind, make_pipeline(*impute_text, *steps), cols))
    if cfg.text is not None:  # last, unscaled: the token ids end each row
        from dlrun.data.text import TextEncoder

        parts.append(("tokens", TextEncoder(cfg.max_tokens, cfg.sequence_length), [cfg.text]))
    return ColumnTransformer(parts, verbose_feature_names_out=False, sparse_threshold=0), text_cols + wide


def prepare(frame: pd.DataFrame, target: str, natural_task: str, cfg: DataConfig,
            keep_source: bool = False) -> DataBundle:
    """Split, impute, encode and scale `frame`, fitting every transform on the training rows.
    `keep_source`: also keep the feature columns as read (bundle.source)."""
    if cfg.max_rows is not None and len(frame) > cfg.max_rows:
        frame = frame.sample(n=cfg.max_rows, random_state=cfg.split_seed).sort_index()
    x, y, report = _select(frame, cfg, target)
    task = infer_task(y, cfg.task, natural_task)
    y_codes, classes = _encode_target(y, task)
    numeric = [c for c in x.columns if c != cfg.text and not _is_text(x[c])]
    as_numbers(x, numeric)
    features = [c for c in x.columns if c != cfg.text]
    report["filled_values"] = int(x[features].isna().sum().sum()) if cfg.missing == "impute" else 0
    train, val, test, stratified = _split(len(x), y_codes if task != "regression" else np.zeros(len(x), "int32"),
                                          task, cfg)
    report["fingerprint"] = fingerprint(x, y, (train, val, test))
    transformer, text_cols = _feature_transformer(x, cfg, report.get("high_cardinality", {}))
    x_train = transformer.fit_transform(x.iloc[train]).astype("float32")
    x_val = transformer.transform(x.iloc[val]).astype("float32")
    x_test = transformer.transform(x.iloc[test]).astype("float32")
    for name, arr in (("train", x_train), ("validation", x_val), ("test", x_test)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"data: the {name} features still hold NaN/inf after data.missing="
                            f"{cfg.missing}; set data.missing=impute or drop")
    feature_names = [str(n) for n in transformer.get_feature_names_out()]
    y_train, y_val, y_test = y_codes[train], y_codes[val], y_codes[test]
    target_scale = None
    if task == "regression" and cfg.target_scaling == "standard":
        target_scale = target_scaler(y_train)
        report["target_scaling"] = {"mean": target_scale[0], "std": target_scale[1]}
    if cfg.resample != "none":
        from dlrun.data.resample import resample

        x_train, y_train, report["resampled"] = resample(x_train, y_train, task, cfg, classes)
    input_shape: Tuple[int, ...] = (x_train.shape[1],)
    if cfg.image_shape is not None:
        shape = tuple(int(d) for d in cfg.image_shape)
        if int(np.prod(shape)) != x_train.shape[1]:
            raise DataError(f"data.image_shape={list(shape)}: holds {int(np.prod(shape))} values but "
                            f"each row has {x_train.shape[1]} features")
        input_shape = shape if len(shape) == 3 else (*shape, 1)
        x_train, x_val, x_test = (a.reshape(-1, *input_shape) for a in (x_train, x_val, x_test))
    report.update(text_columns=text_cols, encoding=cfg.categorical if text_cols else None,
                  scaling=cfg.scaling, stratified=stratified)
    notes = report.pop("notes", [])
    layout = None
    if cfg.text is not None:
        layout, report["text"], text_notes = _text_layout(transformer, x[cfg.text], (train, val, test),
                                                          x_train.shape[1])
        notes += text_notes
    meta = DataMeta(task=task, n_outputs=len(classes) if task == "multiclass" else 1,
                    input_shape=input_shape, feature_names=feature_names, target=str(target),
                    classes=classes, rows={"train": len(train), "val": len(val), "test": len(test)},
                    report=report, target_scale=target_scale, notes=notes, text=layout)
    preprocessing = Preprocessing(transformer=transformer, columns=[str(c) for c in x.columns],
                                  numeric=[str(c) for c in numeric], text=[str(c) for c in text_cols],
                                  text_column=cfg.text)
    source = SourceRows(x, {"train": train, "val": val, "test": test}) if keep_source else None
    return DataBundle(x_train, y_train, x_val, y_val, x_test, y_test, meta, preprocessing, source)


def _text_layout(transformer: Any, texts: pd.Series, splits: Tuple[np.ndarray, ...],
                 width: int) -> Tuple[TextLayout, Dict[str, Any], List[str]]:
    """Where the fitted text encoder's ids are in each row of `width` values, the text
    report (see dlrun/data/text.py) and its note lines."""
    from dlrun.data.text import text_report, text_notes

    encoder = transformer.named_transformers_["tokens"]
    report = text_report(encoder, {name: texts.iloc[idx] for name, idx in zip(("train", "val", "test"), splits)})
    layout = TextLayout(column=str(texts.name), offset=width - encoder.length_, length=encoder.length_,
                        vocabulary=list(encoder.vocabulary_))
    return layout, report, text_notes(report, len(texts), encoder)


def fingerprint(x: pd.DataFrame, y: pd.Series, splits: Tuple[np.ndarray, ...]) -> str:
    """A short hash of the rows as read (features and target) and of the split: the same
    file and config give the same one (0.1 s for MNIST). `dlrun explain` compares it to the run's."""
    import hashlib

    digest = hashlib.sha256()
    for part in (pd.util.hash_pandas_object(x, index=False), pd.util.hash_pandas_object(y, index=False)):
        digest.update(part.to_numpy().tobytes())
    for idx in splits:
        digest.update(np.asarray(idx, dtype="int64").tobytes())
    return digest.hexdigest()[:16]


def as_numbers(x: pd.DataFrame, numeric: List[str], where: str = "data") -> None:
    """Cast the `numeric` columns of `x` to floats in place (one block: float32 for wide
    tables) and refuse infinite values; `where` names the table in the message."""
    if not numeric:
        return
    dtype = np.dtype("float32" if len(numeric) > 256 else "float64")
    if not all(x[c].dtype == dtype for c in numeric):  # assigning even the same dtype splits a wide frame's block
        x[numeric] = x[numeric].astype(dtype)           # into one per column (CIFAR-10: 3,072), slowing all that follows
    infinite = np.isinf(x[numeric].to_numpy()).any(axis=0)
    if infinite.any():
        raise DataError(f"{where}: feature column {numeric[int(np.argmax(infinite))]!r} has infinite values")


def target_scaler(y_train: np.ndarray) -> Tuple[float, float]:
    """(mean, std) of the training target; a constant target keeps std 1."""
    mean, std = float(np.mean(y_train)), float(np.std(y_train))
    return mean, (std if std > 0 and np.isfinite(std) else 1.0)
