"""A text vectorizer fitted on the baseline and stored in it: TF-IDF, then truncated SVD.

Fitted once on the baseline's texts (its ``max_words`` most frequent words,
sublinear term frequencies, smoothed IDF, rows scaled to unit length), then
projected on the top ``dimensions`` singular vectors (latent semantic
analysis), so current texts become vectors in the baseline's own space and
the embedding test (``keel.stats.mmd``) can compare them. Nothing is
downloaded; the state is plain lists (words, IDF weights, components) that
round-trip through JSON and give the same vectors.

Reference: Deerwester et al. (1990), "Indexing by latent semantic analysis",
JASIS 41; scikit-learn's ``TfidfVectorizer`` and ``TruncatedSVD`` fit it.

>>> import numpy as np
>>> from keel.stats.mmd import mmd_test
>>> def documents(seed, count, topics):
...     rng = np.random.default_rng(seed)
...     words = {t: [f"{t}{i}" for i in range(40)] for t in "abc"}  # a topic's own words
...     common = [f"w{i}" for i in range(60)]
...     return [
...         " ".join([*rng.choice(words[rng.choice(topics)], 8), *rng.choice(common, 12)])
...         for _ in range(count)
...     ]
>>> vectorizer = TextVectorizer.fit(documents(1, 400, ["a", "b"]), dimensions=16)
>>> reference = vectorizer.transform(documents(2, 300, ["a", "b"]))
>>> same = vectorizer.transform(documents(3, 300, ["a", "b"]))
>>> mixed = vectorizer.transform(documents(4, 240, ["a", "b"]) + documents(5, 60, ["c"]))
>>> reference.shape, bool(mmd_test(reference, same).p_value > 0.05)
((300, 16), True)
>>> mmd_test(reference, mixed).p_value < 0.01  # 20% of documents from a new topic
True

Texts whose words the baseline knows get exactly scikit-learn's TF-IDF + SVD:

>>> from sklearn.decomposition import TruncatedSVD
>>> from sklearn.feature_extraction.text import TfidfVectorizer
>>> texts = documents(1, 400, ["a", "b"])
>>> tfidf = TfidfVectorizer(sublinear_tf=True, token_pattern=TOKEN_PATTERN).fit(texts)
>>> svd = TruncatedSVD(16, random_state=vectorizer.seed).fit(tfidf.transform(texts))
>>> bool(np.allclose(vectorizer.transform(texts), svd.transform(tfidf.transform(texts))))
True
>>> import json
>>> again = TextVectorizer.from_state(json.loads(json.dumps(vectorizer.state())))
>>> bool(np.allclose(again.transform(["a1 a2 w3"]), vectorizer.transform(["a1 a2 w3"])))
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.errors import DataError, FormatError
from keel.seeds import derive_seed

TOKEN_PATTERN = r"(?u)\b\w+\b"
STATE_FORMAT = 1


@dataclass(frozen=True)
class TextVectorizer:
    """The fitted vocabulary, IDF weights and SVD components (``dimensions`` × words)."""

    words: tuple[str, ...]
    idf: np.ndarray
    components: np.ndarray
    unseen_idf: float
    seed: int = 0

    @classmethod
    def fit(
        cls,
        texts: Sequence[str | None],
        dimensions: int = 64,
        max_words: int = 5_000,
        seed: int | None = None,
    ) -> TextVectorizer:
        """Fit on the baseline's texts (missing and empty ones skipped)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        present = [text for text in texts if text]
        if len(present) < 2:
            raise DataError("a text vectorizer needs at least two non-empty baseline texts")
        tfidf = TfidfVectorizer(
            max_features=max_words, sublinear_tf=True, token_pattern=TOKEN_PATTERN
        )
        matrix = tfidf.fit_transform(present)
        components = min(dimensions, matrix.shape[1] - 1, len(present) - 1)
        if components < 1:
            raise DataError("the baseline's texts have too few distinct words to vectorize")
        if seed is None:
            seed = derive_seed(len(present), present[0], present[-1], "text_vectorizer")
        svd = TruncatedSVD(n_components=components, random_state=seed).fit(matrix)
        words = tuple(tfidf.get_feature_names_out().tolist())
        unseen_idf = float(np.log(1 + len(present)) + 1)  # smoothed IDF of a word in no document
        idf = tfidf.idf_.astype(float)
        return cls(words, idf, svd.components_.astype(float), unseen_idf, seed)

    @property
    def dimensions(self) -> int:
        return int(self.components.shape[0])

    def transform(self, texts: Sequence[str | None]) -> np.ndarray:
        """One row of ``dimensions`` values per text (a missing text becomes NaN).

        Words outside the baseline's vocabulary have no direction in its space
        but still count in the text's length (weighted as a word in no baseline
        document): a text made of new words maps near the origin, so a new topic
        moves the vectors even though its words were never seen.
        """
        from sklearn.feature_extraction.text import CountVectorizer

        index = {word: i for i, word in enumerate(self.words)}
        counter = CountVectorizer(vocabulary=index, token_pattern=TOKEN_PATTERN)
        documents = [text or "" for text in texts]
        counts = counter.transform(documents)
        counts.data = (1.0 + np.log(counts.data)) * self.idf[counts.indices]  # sublinear tf × idf
        squared = np.asarray(counts.multiply(counts).sum(axis=1)).ravel()
        analyze = counter.build_analyzer()
        for row, document in enumerate(documents):
            unseen = Counter(token for token in analyze(document) if token not in index)
            squared[row] += sum(((1.0 + np.log(c)) * self.unseen_idf) ** 2 for c in unseen.values())
        norms = np.sqrt(squared)
        vectors = np.asarray(counts @ self.components.T)
        vectors /= np.where(norms > 0, norms, 1.0)[:, None]
        missing = np.array([text is None for text in texts], dtype=bool)
        vectors[missing] = np.nan
        return vectors

    def state(self) -> dict[str, Any]:
        """The fitted vectorizer as JSON-ready lists."""
        return {
            "format": STATE_FORMAT,
            "words": list(self.words),
            "idf": self.idf.tolist(),
            "components": self.components.tolist(),
            "unseen_idf": self.unseen_idf,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextVectorizer:
        """The vectorizer a ``state()`` dict describes; refused for another format."""
        if state.get("format") != STATE_FORMAT:
            raise FormatError(
                f"this text vectorizer has format {state.get('format')!r}; "
                f"this keel reads format {STATE_FORMAT}"
            )
        return cls(
            tuple(state["words"]),
            np.array(state["idf"]),
            np.array(state["components"]),
            float(state["unseen_idf"]),
            int(state["seed"]),
        )
