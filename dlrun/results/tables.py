"""Tables (pandas) written atomically as CSV, Markdown or Parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Union

import pandas as pd

from dlrun.results.rundir import atomic_path


def write_table(frame: pd.DataFrame, base: Union[str, Path], formats: Iterable[str] = ("csv",)) -> List[Path]:
    """Write `frame` to base.csv / base.md / base.parquet, each atomically."""
    written = []
    for fmt in formats:
        path = Path(f"{base}.{fmt}")
        with atomic_path(path) as tmp:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            elif fmt == "md":
                tmp.write_text(to_markdown(frame) + "\n", encoding="utf-8")
            elif fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                raise ValueError(f"unknown table format {fmt!r}")
        written.append(path)
    return written


def to_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency needed)."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.{digits}g}"
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
