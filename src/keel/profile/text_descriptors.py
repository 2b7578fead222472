"""Descriptors that turn a batch of texts into columns keel can profile and test.

Each text becomes one row: its length in characters, its number of words, the
out-of-vocabulary rate (the share of its words absent from the baseline's
vocabulary), the non-letter share (digits, punctuation and symbols among its
non-space characters) and its script (the Unicode script of most of its
letters: "LATIN", "CYRILLIC", "CJK", ...; "none" without letters). Words
are runs of letters, lower-cased. Empty texts have length 0 and no rates
(NaN); missing ones (None) are counted, not described.

Reference: the descriptors follow Evidently's text descriptors (length,
out-of-vocabulary share, non-letter share); the script is the first word of
each letter's Unicode name (``unicodedata.name``).

>>> baseline = ["the cat sat on the mat", "a dog ate the bone"]
>>> words = vocabulary(baseline)
>>> result = text_descriptors(["the cat ate 42 bones!", "", None, "привет мир"], words)
>>> result.columns["length"].tolist(), result.columns["words"].tolist()
([21.0, 0.0, 10.0], [4.0, 0.0, 2.0])
>>> result.columns["oov_rate"].round(2).tolist()  # "bones" and both Russian words are new
[0.25, nan, 1.0]
>>> result.columns["non_letter_share"].round(2).tolist()  # "4", "2", "!" of 17 characters
[0.18, nan, 0.0]
>>> result.script.tolist(), result.missing, result.empty
(['LATIN', 'none', 'CYRILLIC'], 1, 1)
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[^\W\d_]+")
COLUMNS = ("length", "words", "oov_rate", "non_letter_share")
_SCRIPT_LETTERS = 200  # letters looked at to name a text's script


@dataclass
class TextDescriptors:
    """One array per numeric descriptor and the script of each present text, with counts."""

    columns: dict[str, np.ndarray]
    script: np.ndarray
    missing: int
    empty: int


def vocabulary(texts: Iterable[str | None], max_words: int = 50_000) -> frozenset[str]:
    """The baseline's vocabulary: its ``max_words`` most frequent words."""
    counts: Counter[str] = Counter()
    for text in texts:
        if text:
            counts.update(WORD.findall(text.lower()))
    return frozenset(word for word, _ in counts.most_common(max_words))


def text_descriptors(texts: Iterable[str | None], words: frozenset[str]) -> TextDescriptors:
    """The descriptors of each present text, against the baseline vocabulary ``words``."""
    rows: dict[str, list[float]] = {name: [] for name in COLUMNS}
    scripts: list[str] = []
    missing = empty = 0
    for text in texts:
        if text is None:
            missing += 1
            continue
        if not text:
            empty += 1
        tokens = WORD.findall(text.lower())
        visible = [character for character in text if not character.isspace()]
        letters = [character for character in visible if character.isalpha()]
        rows["length"].append(float(len(text)))
        rows["words"].append(float(len(tokens)))
        unknown = sum(token not in words for token in tokens)
        rows["oov_rate"].append(unknown / len(tokens) if tokens else float("nan"))
        share = 1 - len(letters) / len(visible) if visible else float("nan")
        rows["non_letter_share"].append(share)
        scripts.append(_script(letters))
    return TextDescriptors(
        {name: np.array(values, dtype=float) for name, values in rows.items()},
        np.array(scripts, dtype=object),
        missing,
        empty,
    )


def _script(letters: list[str]) -> str:
    if not letters:
        return "none"
    names = Counter(
        unicodedata.name(letter, "UNKNOWN").split(" ")[0] for letter in letters[:_SCRIPT_LETTERS]
    )
    return names.most_common(1)[0][0]
