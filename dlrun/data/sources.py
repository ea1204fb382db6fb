"""Where rows come from: scikit-learn's bundled data sets (no download), keras.datasets'
image sets (see keras_sets.py) or a user's CSV/Parquet file. Each source returns a
DataFrame and its target column."""
from __future__ import annotations

import contextlib
import csv
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Tuple

import pandas as pd

from dlrun.config.schema import DataConfig
from dlrun.data import generated, generated_text
from dlrun.data.keras_sets import load_cifar10, load_fashion_mnist, load_mnist
from dlrun.data.paths import TABLE_SUFFIXES, check_table_path, named_path
from dlrun.errors import DataError, closest, first_line


def _sklearn(loader_name: str, task: str) -> Callable[[DataConfig], Tuple[pd.DataFrame, str, str]]:
    def load(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
        import sklearn.datasets as ds

        bunch = getattr(ds, loader_name)(as_frame=True)
        frame = bunch.frame.copy()
        target = bunch.target.name if hasattr(bunch.target, "name") and bunch.target.name else "target"
        return frame, target, task

    return load


SOURCES: Dict[str, Callable[[DataConfig], Tuple[pd.DataFrame, str, str]]] = {
    "digits": _sklearn("load_digits", "multiclass"),
    "iris": _sklearn("load_iris", "multiclass"),
    "wine": _sklearn("load_wine", "multiclass"),
    "breast_cancer": _sklearn("load_breast_cancer", "binary"),
    "diabetes": _sklearn("load_diabetes", "regression"),
}


def _header(path: Path, sep: str) -> list:
    """The header row of a text table as written (pandas renames repeated names to 'a.1')."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return next(csv.reader(fh, delimiter=sep), [])


def check_unique_columns(names: list, shown: str) -> None:
    """Refuse a table whose header repeats a column name: which copy is meant is unknowable."""
    repeated = [f"{name!r} ({n} times)" for name, n in Counter(str(n) for n in names).items() if n > 1]
    if repeated:
        raise DataError(f"{shown}: column names must be unique; repeated: {', '.join(repeated[:5])}. "
                        "Rename the copies in the file")


def read_table(path_text: str, key: str = "data.path", min_columns: int = 2) -> pd.DataFrame:
    """Read a .csv/.tsv or .parquet file, with one clear DataError for each way it can
    fail, each naming `key` (the config key or argument that named the file). Training
    needs `min_columns=2` (a target and a feature); new rows to predict may have one."""
    path = check_table_path(path_text, key)
    shown = named_path(path_text, key)
    kind = TABLE_SUFFIXES[path.suffix.lower()]
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            check_unique_columns(pq.read_schema(path).names, shown)
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep)
            if frame.shape[1] == 1 and path.suffix.lower() != ".tsv":  # maybe ';'-, tab- or '|'-separated
                with open(path, newline="", errors="replace") as fh:
                    sample = fh.read(65536)
                with contextlib.suppress(csv.Error):
                    sep = csv.Sniffer().sniff(sample, delimiters=";\t|").delimiter
                    frame = pd.read_csv(path, sep=sep)
            check_unique_columns(_header(path, sep), shown)
    except PermissionError:
        raise DataError(f"{shown}: not readable (permission denied)") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{shown}: the file is empty") from None
    except csv.Error as err:
        raise DataError(f"{shown}: cannot be read as a {kind} table ({err}; "
                        "is it a comma- or semicolon-separated text file?)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise DataError(f"{shown}: cannot be read as a {kind} table ({first_line(err)})") from None
    if frame.shape[0] == 0:
        raise DataError(f"{shown}: the table has a header but no rows")
    if frame.shape[1] < min_columns:
        raise DataError(f"{shown}: found {frame.shape[1]} column; a table needs a target "
                        "and at least one feature column (is the separator a comma?)")
    return frame


def load_csv(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    frame = read_table(str(cfg.path))
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if cfg.target not in columns:
        hint = closest(str(cfg.target), columns)
        raise DataError(f"data.target={cfg.target!r}: no such column in {cfg.path}"
                        + (f" (did you mean '{hint}'?)" if hint else f"; columns: {', '.join(columns[:20])}"))
    for name in cfg.features or []:
        if name not in columns:
            hint = closest(name, columns)
            raise DataError(f"data.features: column {name!r} is not in {cfg.path}"
                            + (f" (did you mean '{hint}'?)" if hint else ""))
    return frame, str(cfg.target), "auto"


SOURCES["csv"] = load_csv

SOURCES["mnist"] = load_mnist
SOURCES["fashion_mnist"] = load_fashion_mnist
SOURCES["cifar10"] = load_cifar10
SOURCES["loans"] = generated.load_loans
SOURCES["cart_abandonment"] = generated.load_cart_abandonment
SOURCES["reviews"] = generated_text.load_reviews


def load_frame(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    """(frame, target column, the source's natural task or 'auto')."""
    return SOURCES[cfg.name](cfg)
