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
    return downsample_stack(_pixels(image)[None], size)[0]


def downsample_stack(stack: np.ndarray, size: int = 16) -> np.ndarray:
    """``downsample`` of k images of one shape at once (k × H × W or k × H × W × 3 pixels,
    as ``read_pixels`` gives them): k × size² values.

    >>> stack = np.random.default_rng(2).uniform(size=(3, 10, 7, 3))
    >>> bool(np.allclose(downsample_stack(stack, 4)[1], downsample(stack[1], 4)))
    True
    """
    luma = _luma_stack(stack)
    sums, counts = luma, np.ones(1)
    for axis, length in ((1, luma.shape[1]), (2, luma.shape[2])):
        parts = np.arange(size)
        starts = parts * (length // size) + np.minimum(parts, length % size)  # as array_split
        sums = np.add.reduceat(sums, starts, axis=axis)
        counts = np.multiply.outer(counts, np.diff(np.r_[starts, length]))
    return (sums / counts.reshape(1, size, size)).reshape(len(stack), -1)


def read_pixels(image: np.ndarray | str | Path | bytes) -> np.ndarray:
    """An image's pixels as floats on 0–1 (H × W grey or H × W × 3 RGB): from an array, a
    path (``.npy``, or any format Pillow reads when installed) or encoded bytes. Raises
    ValueError (or OSError) for what cannot be read.

    >>> import io
    >>> buffer = io.BytesIO(); np.save(buffer, np.full((4, 4), 255, dtype=np.uint8))
    >>> float(read_pixels(buffer.getvalue()).max())
    1.0
    """
    return _pixels(image)


def statistics_of(pixels: np.ndarray) -> dict[str, float]:
    """The statistics (``COLUMNS``) of one image's pixels, as ``read_pixels`` gives them.

    >>> grey = np.tile(np.linspace(0.2, 0.8, 8), (4, 1))  # 4 × 8, a horizontal ramp
    >>> {k: round(v, 3) for k, v in statistics_of(grey).items() if k != "sharpness"}
    {'brightness': 0.5, 'contrast': 0.393, 'saturation': 0.0, 'height': 4.0, 'width': 8.0,
     'aspect': 2.0}
    """
    return _one(pixels)


def statistics_of_stack(stack: np.ndarray) -> np.ndarray:
    """The statistics of k images of one shape at once: a k × len(COLUMNS) array.

    >>> rng = np.random.default_rng(1)
    >>> stack = rng.uniform(0.1, 1.0, (5, 8, 6, 3))
    >>> bool(np.allclose(statistics_of_stack(stack)[2], list(statistics_of(stack[2]).values())))
    True
    """
    luma = _luma_stack(stack)
    count, height, width = luma.shape
    mean = luma.mean(axis=(1, 2))
    safe = np.where(mean > 0, mean, np.nan)  # a black image has no contrast or sharpness
    if stack.ndim == 4:
        top, bottom = stack.max(axis=3), stack.min(axis=3)
        ratio = np.divide(top - bottom, top, out=np.zeros_like(top), where=top > 0)
        saturation = ratio.mean(axis=(1, 2))
    else:
        saturation = np.zeros(count)
    laplacian = (
        luma[:, :-2, 1:-1]
        + luma[:, 2:, 1:-1]
        + luma[:, 1:-1, :-2]
        + luma[:, 1:-1, 2:]
        - 4 * luma[:, 1:-1, 1:-1]
    )
    return np.column_stack(
        [
            mean,
            luma.std(axis=(1, 2)) / safe,
            saturation,
            laplacian.var(axis=(1, 2)) / safe**2,
            np.full(count, float(height)),
            np.full(count, float(width)),
            np.full(count, width / height),
        ]
    )


def _one(pixels: np.ndarray) -> dict[str, float]:
    values = statistics_of_stack(pixels[None])[0]
    return {name: float(value) for name, value in zip(COLUMNS, values, strict=True)}


def _luma_stack(stack: np.ndarray) -> np.ndarray:
    return stack if stack.ndim == 3 else stack[..., :3] @ LUMA


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else pixels[..., :3] @ LUMA


def _pixels(image: np.ndarray | str | Path | bytes) -> np.ndarray:
    if isinstance(image, bytes):
        image = _decode(image)
    elif isinstance(image, str | Path):
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


def _decode(data: bytes) -> np.ndarray:
    """Encoded bytes: ``.npy``, else a format Pillow reads."""
    import io

    if data[:6] == b"\x93NUMPY":
        return np.load(io.BytesIO(data), allow_pickle=False)
    try:
        from PIL import Image
    except ImportError as error:
        raise ValueError("decoding image bytes other than .npy needs Pillow") from error
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return np.asarray(opened.convert("RGB"))
    except Exception as error:  # Pillow raises many kinds for a bad file; all mean "unreadable"
        raise ValueError(f"cannot decode the image bytes: {error}") from error


def _name(image: object, position: int) -> str:
    return str(image) if isinstance(image, str | Path) else f"image {position}"
