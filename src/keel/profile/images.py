"""Per-image statistics that turn a batch of images into numeric columns keel can profile.

Each image becomes one row: brightness (mean luma, Rec. 601, on a 0–1
scale), contrast (RMS contrast over the mean: the standard deviation of luma
divided by its mean), saturation (mean HSV saturation, (max − min) / max per
pixel), sharpness (variance of the 3 × 3 Laplacian of luma divided by the
squared mean luma: low means blurred), height, width and aspect (width /
height). Contrast, saturation and sharpness are ratios, invariant to a pure
scaling of the pixel values, so an image darkened by 40% (× 0.6) moves
brightness alone and a drift check names brightness as the cause.
``downsample`` gives the small vectors the embedding test (``keel.stats.mmd``)
reads. Images that cannot be read are counted and named, never raised.

Reference: ITU-R BT.601 (luma weights); Peli (1990), "Contrast in complex
images", JOSA A 7 (RMS contrast); Pech-Pacheco et al. (2000), "Diatom
autofocusing in brightfield microscopy" (variance of the Laplacian).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> images = [rng.uniform(0.2, 0.9, (32, 48, 3)) for _ in range(3)]
>>> bright = image_statistics(images)
>>> dark = image_statistics([image * 0.6 for image in images])
>>> {name: bool(np.allclose(dark.columns[name], bright.columns[name])) for name in COLUMNS}
{'brightness': False, 'contrast': True, 'saturation': True, 'sharpness': True,
 'height': True, 'width': True, 'aspect': True}
>>> np.allclose(dark.columns["brightness"], 0.6 * bright.columns["brightness"])
True
>>> float(bright.columns["aspect"][0]), bright.failures
(1.5, {})

The seed's failure story, on generated textures: new images taken in poor light
(the same scenes × 0.6) differ from the reference in brightness alone.

>>> from scipy.stats import ks_2samp
>>> def scenes(seed, count=60):
...     rng = np.random.default_rng(seed)
...     return [
...         rng.uniform(0.3, 0.9) * rng.beta(4, 2, (24, 24, 3)) ** rng.uniform(0.5, 2)
...         for _ in range(count)
...     ]
>>> reference, new = image_statistics(scenes(1)), scenes(2)
>>> quiet, dark = image_statistics(new), image_statistics([image * 0.6 for image in new])
>>> p = lambda current, name: ks_2samp(reference.columns[name], current.columns[name]).pvalue
>>> [name for name in COLUMNS[:4] if p(quiet, name) < 0.01]
[]
>>> [name for name in COLUMNS[:4] if p(dark, name) < 0.01]
['brightness']

Over 40 windows of new scenes, undarkened ones stay quiet and darkened ones are caught:

>>> windows = [scenes(seed) for seed in range(10, 50)]
>>> quiet = [p(image_statistics(window), "brightness") >= 0.01 for window in windows]
>>> caught = [p(image_statistics([i * 0.6 for i in w]), "brightness") < 0.01 for w in windows]
>>> float(np.mean(quiet)) >= 0.95, float(np.mean(caught))
(True, 1.0)

Unreadable images are counted and named:

>>> result = image_statistics([images[0], "missing.npy", np.zeros((2, 2))])
>>> result.rows, sorted(result.failures)
(1, ['image 2', 'missing.npy'])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLUMNS = ("brightness", "contrast", "saturation", "sharpness", "height", "width", "aspect")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


@dataclass
class ImageStatistics:
    """One array per statistic (one value per readable image), and why the others failed."""

    columns: dict[str, np.ndarray]
    failures: dict[str, str] = field(default_factory=dict)  # image name -> reason

    @property
    def rows(self) -> int:
        return len(self.columns["brightness"])


def image_statistics(
    images: Iterable[np.ndarray | str | Path], names: Sequence[str] | None = None
) -> ImageStatistics:
    """The statistics of each image: an H × W (grey) or H × W × 3/4 (RGB, RGBA) array, with
    integer pixels on 0–255 or floats on 0–1, or a path to a ``.npy`` file (other formats
    need Pillow). An image that cannot be read is skipped and named in ``failures``."""
    rows: dict[str, list[float]] = {name: [] for name in COLUMNS}
    failures: dict[str, str] = {}
    for position, image in enumerate(images):
        name = names[position] if names is not None else _name(image, position)
        try:
            pixels = _pixels(image)
        except (OSError, ValueError) as error:
            failures[name] = str(error)
            continue
        for column, value in _one(pixels).items():
            rows[column].append(value)
    return ImageStatistics({name: np.array(values) for name, values in rows.items()}, failures)


def downsample(image: np.ndarray, size: int = 16) -> np.ndarray:
    """The image's luma averaged over a size × size grid of cells, flattened (size² values).

    >>> downsample(np.arange(16.0).reshape(4, 4) / 15, size=2).round(3).tolist()
    [0.167, 0.3, 0.7, 0.833]
    """
    luma = _luma(_pixels(image))
    rows = np.array_split(np.arange(luma.shape[0]), size)
    cols = np.array_split(np.arange(luma.shape[1]), size)
    return np.array([luma[np.ix_(r, c)].mean() for r in rows for c in cols])


def _one(pixels: np.ndarray) -> dict[str, float]:
    luma = _luma(pixels)
    mean = float(luma.mean())
    height, width = luma.shape
    if pixels.ndim == 3:
        top, bottom = pixels.max(axis=2), pixels.min(axis=2)
        saturation = float(
            np.mean(np.where(top > 0, (top - bottom) / np.where(top > 0, top, 1), 0))
        )
    else:
        saturation = 0.0
    laplacian = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    )
    return {
        "brightness": mean,
        "contrast": float(luma.std() / mean) if mean > 0 else float("nan"),
        "saturation": saturation,
        "sharpness": float(laplacian.var() / mean**2)
        if mean > 0 and laplacian.size
        else float("nan"),
        "height": float(height),
        "width": float(width),
        "aspect": width / height,
    }


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else pixels[..., :3] @ LUMA


def _pixels(image: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(image, str | Path):
        image = _read(Path(image))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"an image is H × W or H × W × 3/4 pixels, not shape {array.shape}")
    if min(array.shape[:2]) < 3:
        raise ValueError(f"an image of {array.shape[0]} × {array.shape[1]} pixels is too small")
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(float) / 255.0
    else:
        array = array.astype(float)
    if not np.isfinite(array).all():
        raise ValueError("the image has missing or infinite pixel values")
    return array[..., :3] if array.ndim == 3 else array


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        from PIL import Image
    except ImportError as error:
        raise ValueError(
            f"reading {path.suffix} images needs Pillow, which is not installed"
        ) from error
    try:
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB"))
    except Exception as error:  # Pillow raises many kinds for a bad file; all mean "unreadable"
        raise ValueError(f"cannot decode {path.name}: {error}") from error


def _name(image: object, position: int) -> str:
    return str(image) if isinstance(image, str | Path) else f"image {position}"
