"""Which feature columns can help, decided before anything is fitted: constant
columns are dropped, and a text column that names each row (an ID, a name) or has
more distinct values than `data.max_categories` is not one-hot encoded (it would
add a column per value and nothing a model can generalise from). What happens to
it is `data.high_cardinality`: drop (default, with a note), error, ordinal or hash.
Every decision is written to the data report."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import pandas as pd

from dlrun.config.schema import IMAGE_SETS, DataConfig
from dlrun.errors import DataError

ID_LIKE_SHARE = 0.9     # a text column with distinct values in more than this share of its rows names rows
ID_LIKE_MIN_VALUES = 20  # ... once it has at least this many distinct values (tiny tables are spared)


@dataclass
class ColumnPlan:
    """What to do with each feature column."""
    keep: List[str]                                         # columns fed to the encoders
    dropped: List[Dict[str, object]] = field(default_factory=list)  # {column, reason}
    high_cardinality: Dict[str, str] = field(default_factory=dict)  # kept text column -> ordinal | hash
    notes: List[str] = field(default_factory=list)          # one line each, shown before training


def is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def too_many_values(distinct: int, rows: int, max_categories: int) -> str:
    """Why a text column with `distinct` values in `rows` non-empty rows should not be
    one-hot encoded, or '' when it can be."""
    if distinct >= ID_LIKE_MIN_VALUES and distinct > ID_LIKE_SHARE * rows:
        return f"{distinct:,} distinct values in {rows:,} rows (an identifier?)"
    if distinct > max_categories:
        return f"{distinct:,} distinct values, more than data.max_categories={max_categories}"
    return ""


def plan_columns(x: pd.DataFrame, cfg: DataConfig, allow_empty: bool = False) -> ColumnPlan:
    """Decide, for the feature columns of `x`, which are kept and how high-cardinality
    text columns are encoded. Raises DataError for data.high_cardinality=error, and when
    no column is left unless `allow_empty` (a data.text column, planned apart, is one)."""
    plan = ColumnPlan(keep=[])
    drop_constant = cfg.name not in IMAGE_SETS if cfg.drop_constant is None else cfg.drop_constant
    for col in x.columns:
        values = x[col]
        if drop_constant and values.nunique(dropna=False) <= 1:
            only = values.dropna().iloc[0] if values.notna().any() else None
            shown = "no value" if only is None else repr(only.item() if hasattr(only, "item") else only)
            plan.dropped.append({"column": col, "reason": f"constant ({shown} in every row)"})
            plan.notes.append(f"data: column {col!r} dropped: it holds {shown} in every row")
            continue
        if is_text(values):
            present = values.dropna()
            why = too_many_values(int(present.nunique()), int(len(present)), cfg.max_categories)
            if why:
                if cfg.high_cardinality == "error":
                    raise DataError(f"data: text column {col!r} has {why}; one-hot encoding it would add a "
                                    "column per value. Drop it from data.features, or set "
                                    "data.high_cardinality=drop, ordinal or hash")
                if cfg.high_cardinality == "drop":
                    plan.dropped.append({"column": col, "reason": why})
                    plan.notes.append(f"data: text column {col!r} dropped: {why}. To keep it: "
                                      "data.high_cardinality=ordinal or hash, or raise data.max_categories")
                    continue
                plan.high_cardinality[col] = cfg.high_cardinality
                plan.notes.append(f"data: text column {col!r} has {why}; encoded as "
                                  f"{cfg.high_cardinality} (data.high_cardinality)")
        plan.keep.append(col)
    if not plan.keep and not allow_empty:
        reasons = "; ".join(f"{d['column']}: {d['reason']}" for d in plan.dropped[:4])
        raise DataError(f"data: no usable feature column left ({reasons}); see data.high_cardinality "
                        "and data.drop_constant")
    return plan
