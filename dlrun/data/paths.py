"""Checks of a data file's path that need no pandas, so that the commonest data
errors (a typo in data.path) are reported before any heavy import."""
from __future__ import annotations

from pathlib import Path

from dlrun.errors import DataError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


def shown_path(path_text: str) -> str:
    """data.path as the user wrote it, with the file it resolves to when that differs."""
    resolved = str(Path(path_text).expanduser().resolve())
    return path_text if resolved == path_text else f"{path_text} (resolved: {resolved})"


def named_path(path_text: str, key: str = "data.path") -> str:
    """How error messages name a file: 'data.path=FILE (resolved: ...)', or the path alone
    when no key named it (a command's argument)."""
    return f"{key}={shown_path(path_text)}" if key else shown_path(path_text)


def check_table_path(path_text: str, key: str = "data.path") -> Path:
    """The file `data.path` (or another `key`) names, or one clear DataError: missing,
    a directory, empty, or not a table format dlrun reads."""
    path = Path(path_text).expanduser()
    shown = named_path(path_text, key)
    if not path.exists():
        raise DataError(f"{shown}: file not found")
    if path.is_dir():
        raise DataError(f"{shown}: is a directory; expected a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{shown}: the file is empty")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{shown}: unsupported file type '{path.suffix}'; "
                        f"expected one of {', '.join(sorted(TABLE_SUFFIXES))}")
    return path
