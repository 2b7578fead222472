"""Embedding and text drift tests: false alarms on quiet windows, power on new-topic mixtures.

Run: nice -n 10 python benchmarks/embedding_drift.py [--trials 100] [--rows 500]
(``--quiet-trials N`` for more quiet windows, ``--drifted-trials 0`` for none,
``--spaces vectors`` and ``--tests MMD,centroid`` for a part)

Two embedding spaces, both generated and seeded (nothing is downloaded):

- **text**: documents from seeded topic vocabularies (each topic its own 60
  generated words, plus 200 common words; a document is 6–10 topic words and
  10–14 common ones). keel's ``TextVectorizer`` (TF-IDF + SVD, 64 dimensions)
  is fitted on 2,000 baseline documents from five topics; the new topic's
  words are unseen by the baseline. The text descriptors' out-of-vocabulary
  rate (KS, reference window vs current window) is tested beside the vectors.
- **vectors**: 384-dimensional unit vectors in a narrow cone, as sentence
  embeddings are (e5's pairwise cosines sit near 0.8): v = normalize(c + 0.25·tₖ
  + 0.2·ε), with c a common direction, tₖ a topic's direction and ε isotropic
  noise (ε ~ N(0, I/384)); five baseline topics, one new.

Each trial draws a fresh reference window and a fresh current window (``--rows``
each): quiet (the baseline's topics), or with 10% / 20% of the current window's
rows from the new topic. Each test is judged at α = 0.05. The verdict is MMD
(``keel.stats.mmd``); the classifier test, PCA + per-component KS (Bonferroni)
and the permutation-calibrated centroid distance (``keel.stats.embedding_evidence``)
are evidence; Evidently's fixed rule (centroid distance ≥ 0.2, uncalibrated) is
shown for comparison.
"""

from __future__ import annotations

import argparse
import string
import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from keel.profile.text_descriptors import text_descriptors, vocabulary
from keel.profile.text_vectorizer import TextVectorizer
from keel.seeds import derive_seed
from keel.stats.embedding_evidence import centroid_test, classifier_test, pca_ks_test
from keel.stats.mmd import mmd_test

ALPHA = 0.05
SHARES = (0.0, 0.1, 0.2)
TOPICS = 5  # baseline topics; topic number TOPICS is the new one
DIMENSIONS = 384


def _words(rng: np.random.Generator, count: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    return ["".join(rng.choice(letters, rng.integers(5, 9))) for _ in range(count)]


class Documents:
    """Seeded topic vocabularies; ``sample`` draws documents from chosen topic shares."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.topics = [_words(rng, 60) for _ in range(TOPICS + 1)]
        self.common = _words(rng, 200)

    def sample(self, rng: np.random.Generator, count: int, new_share: float) -> list[str]:
        topic = rng.integers(0, TOPICS, count)
        topic[rng.random(count) < new_share] = TOPICS
        texts = []
        for k in topic:
            own = rng.choice(self.topics[k], rng.integers(6, 11))
            common = rng.choice(self.common, rng.integers(10, 15))
            words = np.concatenate([own, common])
            rng.shuffle(words)
            texts.append(" ".join(words))
        return texts


class Vectors:
    """Unit vectors in a narrow cone around a common direction, one direction per topic."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.common = _unit(rng.normal(size=DIMENSIONS))
        self.topics = np.array([_unit(rng.normal(size=DIMENSIONS)) for _ in range(TOPICS + 1)])

    def sample(self, rng: np.random.Generator, count: int, new_share: float) -> np.ndarray:
        topic = rng.integers(0, TOPICS, count)
        topic[rng.random(count) < new_share] = TOPICS
        noise = rng.normal(size=(count, DIMENSIONS)) / np.sqrt(DIMENSIONS)
        return _unit(self.common + 0.25 * self.topics[topic] + 0.2 * noise)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _fixed_centroid(reference: np.ndarray, current: np.ndarray) -> tuple[bool, float]:
    distance = float(np.linalg.norm(reference.mean(axis=0) - current.mean(axis=0)))
    return distance >= 0.2, distance


Test = Callable[[np.ndarray, np.ndarray], tuple[bool, float]]

VECTOR_TESTS: dict[str, Test] = {
    "MMD (verdict)": lambda r, c: _judged(mmd_test(r, c).p_value),
    "classifier (evidence)": lambda r, c: _judged(classifier_test(r, c).p_value),
    "PCA + KS, Bonferroni (evidence)": lambda r, c: _judged(pca_ks_test(r, c).p_value),
    "centroid, calibrated (evidence)": lambda r, c: _judged(centroid_test(r, c).p_value),
    "centroid ≥ 0.2, fixed (Evidently's rule)": _fixed_centroid,
}


def _judged(p_value: float) -> tuple[bool, float]:
    return p_value <= ALPHA, p_value


def run(
    space: str, quiet: int, drifted: int, rows: int, chosen: tuple[str, ...] = ()
) -> dict[tuple[str, float], list[tuple[bool, float]]]:
    outcomes: dict[tuple[str, float], list[tuple[bool, float]]] = {}
    seed = derive_seed("embedding-drift", space)
    if space == "text":
        documents = Documents(seed)
        baseline = documents.sample(np.random.default_rng(seed + 1), 2_000, 0.0)
        vectorizer = TextVectorizer.fit(baseline, dimensions=64)
        words = vocabulary(baseline)
    else:
        generator = Vectors(seed)
    for share in SHARES:
        for trial in range(quiet if share == 0.0 else drifted):
            rng = np.random.default_rng(derive_seed("window", space, share, trial))
            if space == "text":
                reference_texts = documents.sample(rng, rows, 0.0)
                current_texts = documents.sample(rng, rows, share)
                reference = vectorizer.transform(reference_texts)
                current = vectorizer.transform(current_texts)
                oov = stats.ks_2samp(
                    text_descriptors(reference_texts, words).columns["oov_rate"],
                    text_descriptors(current_texts, words).columns["oov_rate"],
                ).pvalue
                if not chosen or "out-of-vocabulary".startswith(chosen):
                    outcomes.setdefault(("out-of-vocabulary rate, KS (text)", share), []).append(
                        _judged(float(oov))
                    )
            else:
                reference = generator.sample(rng, rows, 0.0)
                current = generator.sample(rng, rows, share)
            for name, test in VECTOR_TESTS.items():
                if not chosen or name.startswith(chosen):
                    outcomes.setdefault((name, share), []).append(test(reference, current))
    return outcomes


def _rate(flags: list[bool]) -> str:
    if not flags:
        return "—"
    hits, n = int(np.sum(flags)), len(flags)
    upper = stats.beta.ppf(0.975, hits + 1, n - hits) if hits < n else 1.0  # Clopper–Pearson
    return f"{hits}/{n} = {hits / n:.1%} (≤ {upper:.1%})"


def table(space: str, outcomes: dict[tuple[str, float], list[tuple[bool, float]]]) -> None:
    names = list(dict.fromkeys(name for name, _ in outcomes))
    print(f"\n## {space}\n")
    print(
        "| test | false alarms, quiet windows (95% upper bound) | power, 10% new topic "
        "| power, 20% new topic | median statistic: quiet / 10% / 20% |"
    )
    print("|---|---|---|---|---|")
    for name in names:
        found = {share: outcomes.get((name, share), []) for share in SHARES}
        cells = [_rate([flag for flag, _ in found[share]]) for share in SHARES]
        medians = " / ".join(
            f"{np.median([value for _, value in found[share]]):.3g}" if found[share] else "—"
            for share in SHARES
        )
        print(
            f"| {name} | {cells[0]} | {cells[1].split(' (')[0]} | {cells[2].split(' (')[0]} "
            f"| {medians} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=100, help="quiet windows, half as many drifted"
    )
    parser.add_argument("--quiet-trials", type=int, help="quiet windows (default: --trials)")
    parser.add_argument("--drifted-trials", type=int, help="windows at each mixture (--trials / 2)")
    parser.add_argument("--rows", type=int, default=500, help="rows in each window")
    parser.add_argument("--spaces", default="text,vectors")
    parser.add_argument("--tests", default="", help="tests whose names start so (comma list)")
    args = parser.parse_args()
    quiet = args.trials if args.quiet_trials is None else args.quiet_trials
    drifted = max(1, args.trials // 2) if args.drifted_trials is None else args.drifted_trials
    chosen = tuple(part.strip() for part in args.tests.split(",") if part.strip())
    started = time.perf_counter()
    print(
        f"α = {ALPHA}; {args.rows} + {args.rows} rows per window; {quiet} quiet windows, "
        f"{drifted} at each mixture. Medians: p-values for the tests, the distance for the "
        "fixed rule."
    )
    for space in args.spaces.split(","):
        began = time.perf_counter()
        table(space, run(space, quiet, drifted, args.rows, chosen))
        print(f"\n({time.perf_counter() - began:.0f} s)")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
