"""A column of free text (data.text) as a sequence of token ids.

Texts are standardized and split exactly as Keras's `TextVectorization` does by
default (`standardize="lower_and_strip_punctuation"`, `split="whitespace"`; with the
TensorFlow backend `tf.strings.lower` lowercases ASCII letters only and
`tf.strings.split` splits on ASCII whitespace only, so this module does the same).
The vocabulary holds id 0 for padding, id 1 for a word outside the vocabulary
("[UNK]"), then the training rows' words by frequency (ties alphabetical, so the
same rows always give the same ids), `max_tokens` ids in all. Each text becomes
`length_` ids, padded with 0 or cut at the end; `TextVectorization(vocabulary=
vocabulary_[2:], output_sequence_length=length_)` gives the same ids.

Why not `TextVectorization` itself: the vocabulary must be fitted before TensorFlow
is imported (the config and data checks run first and answer bad input at once), and
the text's ids travel as the last columns of the one numeric float32 array every
other feature is in, so cross-validation folds, resampling, the saved preprocessing
(skops) and `dlrun predict` handle text runs with no code of their own."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from dlrun.errors import DataError, closest

PAD, OOV = "", "[UNK]"                 # ids 0 and 1, as in TextVectorization
MAX_AUTO_LENGTH = 512                  # an automatic sequence length is capped here (attention is quadratic in it)
AUTO_PERCENTILE = 95                   # data.sequence_length=null: this percentile of the training texts' lengths
_STRIP = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')  # TextVectorization's DEFAULT_STRIP_REGEX
_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # what tf.strings.split splits on
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _missing(text: Any) -> bool:
    return text is None or (isinstance(text, float) and text != text) or text is pd.NA


def standardize(text: Any) -> str:
    """Lowercase (ASCII letters) and strip punctuation; a missing value is ''."""
    if _missing(text):
        return ""
    return _STRIP.sub("", as_text(text).translate(_ASCII_LOWER))


def tokenize(text: Any) -> List[str]:
    """The words of one text, standardized; none for a missing or empty one."""
    return [t for t in _SPACE.split(standardize(text)) if t]


def as_text(value: Any) -> str:
    """A cell as text: a whole number read as a float (a column with gaps) loses its '.0'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _column(x: Any) -> List[Any]:
    """The values of a one-column frame, a Series, a 2-D array with one column or a list."""
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise ValueError(f"TextEncoder reads one column, got {x.shape[1]}")
        return x.iloc[:, 0].tolist()
    if isinstance(x, pd.Series):
        return x.tolist()
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"TextEncoder reads one column, got {arr.shape[1]}")
        arr = arr[:, 0]
    return arr.tolist()


def auto_length(counts: Iterable[int]) -> int:
    """The 95th percentile of the non-empty texts' token counts, rounded up: at least 1,
    at most MAX_AUTO_LENGTH."""
    counts = np.asarray([c for c in counts if c > 0])
    if counts.size == 0:
        return 1
    return int(min(MAX_AUTO_LENGTH, max(1, np.ceil(np.percentile(counts, AUTO_PERCENTILE)))))


def uncapped_length(counts: Iterable[int]) -> int:
    counts = np.asarray([c for c in counts if c > 0])
    return int(np.ceil(np.percentile(counts, AUTO_PERCENTILE))) if counts.size else 1


class TextEncoder(TransformerMixin, BaseEstimator):
    """One text column -> `length_` float32 token ids per row (0 pads, 1 is out of vocabulary).

    fit: `vocabulary_` (["", "[UNK]", words by frequency in the rows given, ties
    alphabetical], at most `max_tokens` entries) and `length_` (`sequence_length`, or
    the 95th percentile of the non-empty texts' token counts rounded up, 1 to 512)."""

    def __init__(self, max_tokens: int = 20000, sequence_length: Optional[int] = None) -> None:
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length

    def fit(self, x: Any, y: Any = None) -> "TextEncoder":
        names = getattr(x, "columns", None)
        name = getattr(x, "name", None)
        self.column_ = str(names[0]) if names is not None else (str(name) if name is not None else "text")
        self.feature_names_in_ = np.asarray([self.column_], dtype=object)
        self.n_features_in_ = 1
        texts = [tokenize(v) for v in _column(x)]
        counts = Counter(t for tokens in texts for t in tokens)
        words = sorted(counts, key=lambda w: (-counts[w], w))[:max(0, int(self.max_tokens) - 2)]
        self.vocabulary_ = [PAD, OOV, *words]
        lengths = [len(t) for t in texts]
        self.length_ = int(self.sequence_length) if self.sequence_length is not None else auto_length(lengths)
        self.auto_uncapped_length_ = None if self.sequence_length is not None else uncapped_length(lengths)
        return self

    def index(self) -> Dict[str, int]:
        """word -> id."""
        return {w: i for i, w in enumerate(self.vocabulary_) if i > 1}

    def transform(self, x: Any) -> np.ndarray:
        lookup = self.index()
        values = _column(x)
        out = np.zeros((len(values), self.length_), dtype="float32")
        for row, value in enumerate(values):
            ids = [lookup.get(t, 1) for t in tokenize(value)[:self.length_]]
            out[row, :len(ids)] = ids
        return out

    def get_feature_names_out(self, input_features: Optional[Any] = None) -> np.ndarray:
        column = str(input_features[0]) if input_features is not None and len(input_features) else self.column_
        return np.asarray([f"{column}[{i}]" for i in range(self.length_)], dtype=object)


# ------------------------------------------------------------------ checks and report
def check_text_column(frame: pd.DataFrame, column: str, target: str, where: str) -> None:
    """Refuse a data.text column that is absent, is the target, holds numbers only or
    holds no word in any row. `where`: the file (or data set) named in the message."""
    columns = [str(c) for c in frame.columns]
    key = f"data.text={column!r}"
    if column not in columns:
        hint = closest(column, columns)
        raise DataError(f"{key}: no such column in {where}"
                        + (f" (did you mean '{hint}'?)" if hint else f"; columns: {', '.join(columns[:20])}"))
    if column == target:
        raise DataError(f"{key}: is the target column; data.text names a feature column of free text")
    values = frame[column]
    present = values.dropna()
    if present.empty or not any(tokenize(v) for v in present):
        raise DataError(f"{key}: the column holds no words in any row (every text is empty); "
                        "name a column of free text")
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values) or \
            pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().all():
        examples = ", ".join(as_text(v) for v in present.unique()[:3])
        raise DataError(f"{key}: the column holds numbers only ({examples}); data.text names a column of "
                        "free text (a number column is a feature as it is)")


def text_report(encoder: TextEncoder, splits: Dict[str, pd.Series]) -> Dict[str, Any]:
    """What the data report says about the text column: vocabulary, length, empty rows,
    texts cut, and the out-of-vocabulary share of the test split's words."""
    lookup = encoder.index()
    empty = cut = test_tokens = test_oov = 0
    for split, values in splits.items():
        for value in values.tolist():
            tokens = tokenize(value)
            empty += not tokens
            cut += len(tokens) > encoder.length_
            if split == "test":
                test_tokens += len(tokens)
                test_oov += sum(t not in lookup for t in tokens)
    return {"column": encoder.column_, "vocabulary_size": len(encoder.vocabulary_),
            "sequence_length": encoder.length_, "sequence_length_auto": encoder.sequence_length is None,
            "empty_rows": int(empty), "cut_rows": int(cut),
            "test_oov_share": round(test_oov / test_tokens, 4) if test_tokens else 0.0}


def text_notes(report: Dict[str, Any], rows: int, encoder: TextEncoder) -> List[str]:
    """Note lines (shown before training) for cut texts, empty rows and a capped length."""
    col, length = report["column"], report["sequence_length"]
    notes = []
    uncapped = encoder.auto_uncapped_length_
    if uncapped is not None and uncapped > length:
        notes.append(f"data: text column {col!r}: the {AUTO_PERCENTILE}th percentile of text lengths is {uncapped:,} "
                     f"tokens; data.sequence_length capped at {length} (set it to choose)")
    if report["cut_rows"]:
        notes.append(f"data: text column {col!r}: {report['cut_rows']:,} of {rows:,} texts are longer than "
                     f"data.sequence_length={length} tokens and are cut at the end")
    if report["empty_rows"]:
        notes.append(f"data: text column {col!r}: {report['empty_rows']:,} row(s) have no text; "
                     "they are read as empty sequences (all padding)")
    return notes
