"""Movie reviews dlrun generates itself, deterministically (no download), in which
word ORDER decides the label: a bag-of-words model cannot solve them, a model that
reads the sequence (attention, RNN) can.

`reviews` (data=reviews): 4,000 short reviews. Columns:
- `review` (the text column, data.text=review);
- `sentiment` (the target): positive / negative.

Each review is drawn as follows (seed REVIEWS_SEED, so every call returns the same table):
- The label is drawn first: positive or negative, equal odds.
- A *phrase* of a given polarity is `[negation] [intensifier] adjective`, the
  adjective from POSITIVE when the polarity is positive without a negation or
  negative with one, else from NEGATIVE ("not good" is negative, "never boring"
  positive). Words are drawn uniformly from their lists; an intensifier is written
  in capitals one time in six.
- With probability 0.5 the draw is a *single clause* (about 40% of the rows) whose
  phrase has the label's polarity, with a negation (not, never, hardly) with
  probability 0.35 and an intensifier (really, very, ...) with probability 0.3; it
  is one of (equal odds) "the ASPECT was PHRASE", "this film/movie is PHRASE",
  "a PHRASE film/movie" (negated: "not a great film") or the bare PHRASE, after a
  neutral opener ("honestly,", "overall,", "i thought", ...) with probability 0.15.
- Otherwise it is a *contrast* (about 60% of the rows), "the ASPECT1 was PHRASE1
  but the ASPECT2 was PHRASE2" with two different aspects: PHRASE2 has the label's
  polarity and PHRASE1 the opposite one, each with one modifier at most (a negation
  with probability 0.35, else an intensifier with probability 0.4). The clause
  after "but" decides. With probability 0.5 the contrast's *mirror* is added too:
  the same aspects with the two phrases swapped ("the plot was not good but the
  music was great", positive; "the plot was great but the music was not good",
  negative): the same bag of words with the other label. Both clauses are drawn
  from the same distribution given their polarity, so even unmirrored, "A but B"
  and "B but A" are equally likely: a model that ignores word order is right on
  about half of the contrasts (about 70% of all reviews) at best.
- Decoration that carries no label: a comma before "but" with probability 0.5, a
  capitalised first letter with probability 0.3, and an ending of nothing, ".",
  "!" or "..." (drawn for each review, a mirror's too).
The rows are then shuffled. No review has more than 11 words and about a fifth
have 11, so the automatic data.sequence_length (95th percentile) keeps every word.
Labels are exact (no noise): a review's text determines its label, so a perfect
model is possible.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import DataConfig

REVIEWS_ROWS = 4_000
REVIEWS_SEED = 2011  # the year of Maas et al.'s IMDB review data set
SINGLE_P = 0.5       # draws of one clause (a contrast draw may add its mirror: about 40% of rows)
MIRROR_P = 0.5       # a contrast's mirror (the phrases swapped, the other label) is added too
NEGATION_P = 0.35    # a phrase has a negation
INTENSIFIER_P = 0.3  # a single clause's phrase has an intensifier
CONTRAST_INTENSIFIER_P = 0.4  # a contrast's phrase without a negation has an intensifier
OPENER_P = 0.15      # a single clause starts with a neutral opener
ASPECTS = ("plot", "acting", "music", "ending", "story", "cast", "pacing", "dialogue", "script",
           "soundtrack", "direction", "cinematography", "humor", "editing", "score", "finale")
POSITIVE = ("good", "great", "excellent", "wonderful", "brilliant", "superb", "moving", "clever",
            "beautiful", "gripping", "charming", "fun")
NEGATIVE = ("bad", "awful", "terrible", "dull", "boring", "weak", "poor", "clumsy", "flat", "messy",
            "tedious", "bland")
NEGATIONS = ("not", "never", "hardly")
INTENSIFIERS = ("really", "very", "truly", "quite", "so", "extremely")
OPENERS = ("honestly,", "overall,", "i thought", "to be fair,", "in short,")
FILMS = ("film", "movie")
ENDINGS = ("", ".", ".", "!", "...")


class _Draw:
    """Small helpers around one random generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: tuple) -> str:
        return options[int(self.rng.integers(len(options)))]

    def phrase(self, positive: bool, single: bool) -> Tuple[str, str, str]:
        """(negation, intensifier, adjective) whose polarity is `positive`; a contrast's
        clause (`single` false) has one modifier at most."""
        negation = self.pick(NEGATIONS) if self.chance(NEGATION_P) else ""
        if single:
            intensifier = self.pick(INTENSIFIERS) if self.chance(INTENSIFIER_P) else ""
        else:
            intensifier = self.pick(INTENSIFIERS) if not negation and self.chance(CONTRAST_INTENSIFIER_P) else ""
        if intensifier and self.chance(1 / 6):
            intensifier = intensifier.upper()
        adjective = self.pick(POSITIVE if positive != bool(negation) else NEGATIVE)
        return negation, intensifier, adjective


def _join(*words: str) -> str:
    return " ".join(w for w in words if w)


def _single(draw: _Draw, positive: bool) -> str:
    negation, intensifier, adjective = draw.phrase(positive, single=True)
    form = int(draw.rng.integers(4))
    if form == 0:
        text = _join("the", draw.pick(ASPECTS), "was", negation, intensifier, adjective)
    elif form == 1:
        text = _join("this", draw.pick(FILMS), "is", negation, intensifier, adjective)
    elif form == 2:
        following = (intensifier or adjective).lower()
        text = _join(negation, "an" if following[0] in "aeiou" else "a", intensifier, adjective, draw.pick(FILMS))
    else:
        text = _join(negation, intensifier, adjective)
    return _join(draw.pick(OPENERS), text) if draw.chance(OPENER_P) else text


def _contrasts(draw: _Draw, positive: bool) -> List[Tuple[str, bool]]:
    """A contrast review with its label, and with probability MIRROR_P its mirror."""
    first, second = (ASPECTS[int(i)] for i in draw.rng.choice(len(ASPECTS), size=2, replace=False))
    before, after = draw.phrase(not positive, single=False), draw.phrase(positive, single=False)

    def text(p1: Tuple[str, ...], p2: Tuple[str, ...]) -> str:
        comma = "," if draw.chance(0.5) else ""
        return _join("the", first, "was", *p1) + comma + " " + _join("but", "the", second, "was", *p2)

    out = [(text(before, after), positive)]
    if draw.chance(MIRROR_P):
        out.append((text(after, before), not positive))
    return out


def _decorate(draw: _Draw, text: str) -> str:
    if draw.chance(0.3):
        text = text[0].upper() + text[1:]
    return text + draw.pick(ENDINGS)


def reviews_table(rows: int = REVIEWS_ROWS, seed: int = REVIEWS_SEED) -> pd.DataFrame:
    """The `reviews` table (see the module docstring)."""
    draw = _Draw(seed)
    drawn: List[Tuple[str, bool]] = []
    while len(drawn) < rows:
        positive = draw.chance(0.5)
        drawn += [(_single(draw, positive), positive)] if draw.chance(SINGLE_P) else _contrasts(draw, positive)
    drawn = [drawn[int(i)] for i in draw.rng.permutation(rows)]  # a mirror beyond `rows` is left out
    return pd.DataFrame({"review": [_decorate(draw, t) for t, _ in drawn],
                         "sentiment": ["positive" if p else "negative" for _, p in drawn]})


def load_reviews(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    return reviews_table(), "sentiment", "binary"
