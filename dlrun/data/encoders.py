"""A hashing encoder for high-cardinality text columns (data.high_cardinality=hash).

scikit-learn's FeatureHasher hashes without knowing its columns (a value hashes the
same in every column) and has no feature names, which the data report, `dlrun
predict` and explanations need; this one hashes each column into its own
`n_buckets` indicator columns with a stable hash (CRC-32), so a saved run gives
the same columns in any process."""
from __future__ import annotations

import zlib
from typing import Any, List, Optional

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def bucket(value: Any, n_buckets: int) -> int:
    """The bucket of one value: CRC-32 of its text, modulo n_buckets (stable across runs)."""
    return zlib.crc32(str(value).encode("utf-8")) % n_buckets


class HashEncoder(TransformerMixin, BaseEstimator):
    """Each column -> `n_buckets` 0/1 columns, one set by the value's hash bucket.
    Missing values (None/NaN) set none."""

    def __init__(self, n_buckets: int = 32) -> None:
        self.n_buckets = n_buckets

    def fit(self, x: Any, y: Any = None) -> "HashEncoder":
        names = getattr(x, "columns", None)
        width = x.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in names] if names is not None
                                            else [f"x{i}" for i in range(width)], dtype=object)
        self.n_features_in_ = width
        return self

    def transform(self, x: Any) -> np.ndarray:
        values = np.asarray(x, dtype=object)
        out = np.zeros((values.shape[0], values.shape[1] * self.n_buckets), dtype="float32")
        for j in range(values.shape[1]):
            for i, value in enumerate(values[:, j]):
                if value is None or (isinstance(value, float) and value != value):
                    continue
                out[i, j * self.n_buckets + bucket(value, self.n_buckets)] = 1.0
        return out

    def get_feature_names_out(self, input_features: Optional[Any] = None) -> np.ndarray:
        names: List[str] = list(input_features if input_features is not None else self.feature_names_in_)
        return np.asarray([f"{name}#{k}" for name in names for k in range(self.n_buckets)], dtype=object)
