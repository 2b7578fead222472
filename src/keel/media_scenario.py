"""Generated images and texts with known drifts, for the tests, benchmarks and docs of
embedding, text and image columns (``docs/unstructured.md``); nothing is downloaded.

``scenes``: textures (beta noise under a random gamma and exposure) with a bright disk on
each, as H × W × 3 arrays in [0, 1]; darkening them (× 0.6) moves brightness alone.
``documents``: texts of 8 topic words and 12 common words, each topic ("a", "b", "c") with
its own 40 words; a window mixing in a topic the reference lacks is a new-topic drift.

>>> [image.shape for image in scenes(0, 2)]
[(16, 16, 3), (16, 16, 3)]
>>> len(documents(0, 3, "ab")[0].split())
20
"""

from __future__ import annotations

import numpy as np


def scenes(seed: int, count: int, side: int = 16) -> list[np.ndarray]:
    """``count`` generated images of ``side`` × ``side`` pixels (see the module docstring).

    >>> first, again = scenes(3, 1)[0], scenes(3, 1)[0]
    >>> bool((first == again).all()), bool(0 <= first.min() and first.max() <= 1)
    (True, True)
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:side, :side]
    images = []
    for _ in range(count):  # one image at a time: each draws its own texture and disk
        texture = rng.beta(4, 2, (side, side, 3)) ** rng.uniform(0.5, 2)
        centre, radius = rng.uniform(3, side - 3, 2), rng.uniform(2, side / 3)
        disk = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2
        texture[disk] = np.clip(texture[disk] * 1.5, 0, 1)
        images.append(rng.uniform(0.3, 0.9) * texture)
    return images


def documents(seed: int, count: int, topics: str) -> list[str]:
    """``count`` generated texts, each on one of ``topics`` (see the module docstring).

    >>> documents(1, 1, "c")[0].split()[0].startswith("c")
    True
    """
    rng = np.random.default_rng(seed)
    words = {t: [f"{t}{i}" for i in range(40)] for t in "abc"}
    common = [f"w{i}" for i in range(60)]
    return [
        " ".join([*rng.choice(words[rng.choice(list(topics))], 8), *rng.choice(common, 12)])
        for _ in range(count)
    ]
