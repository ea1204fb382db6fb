"""Data sets dlrun generates itself, deterministically (no download), for lessons
that need a property no bundled set has.

`loans` (data=loans): 10,000 credit-card customers, of whom about 3.3% default,
modelled on the `Default` table of James, Witten, Hastie and Tibshirani's "An
Introduction to Statistical Learning" (ISLR), with its published logistic-regression
coefficients. Columns:
- `customer_id`: a unique text id per row (dlrun drops it as an identifier);
- `student`: Yes (29%) / No;
- `balance`: average monthly card balance in dollars (students carry more);
- `income`: yearly income in dollars (students earn less), 2% missing;
- `age`: 18-80 years (no effect on default);
- `card`: classic / gold / platinum (no effect on default);
- `default` (the target): Yes / No, drawn with
  logit P(default) = -10.87 + 0.005737 * balance - 0.6468 * student.
The seed is fixed: every call returns the same table.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import DataConfig

LOANS_ROWS = 10_000
LOANS_SEED = 2013  # the year ISLR appeared


def loans_table(rows: int = LOANS_ROWS, seed: int = LOANS_SEED) -> pd.DataFrame:
    """The `loans` table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    student = rng.random(rows) < 0.294
    balance = np.clip(rng.normal(np.where(student, 988.0, 772.0), 480.0), 0.0, None).round(2)
    income = np.clip(rng.normal(np.where(student, 17_950.0, 40_010.0), np.where(student, 4_500.0, 10_000.0)),
                     770.0, None).round(2)
    logit = -10.87 + 0.005737 * balance - 0.6468 * student
    default = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer_id": [f"C{100000 + i}" for i in rng.permutation(rows)],
        "student": np.where(student, "Yes", "No"),
        "balance": balance,
        "income": income,
        "age": rng.integers(18, 81, rows),
        "card": rng.choice(["classic", "gold", "platinum"], rows, p=[0.6, 0.3, 0.1]),
        "default": np.where(default, "Yes", "No"),
    })
    frame.loc[rng.random(rows) < 0.02, "income"] = np.nan
    return frame


def load_loans(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    return loans_table(), "default", "binary"
