"""Image files as the data pipeline reads them (8-bit RGB), and finding the unreadable ones.

The data pipeline scales 16-bit and float images to 8 bits; ``clip_lightning.load``'s
``preprocess`` stays OpenAI's own (``convert("RGB")``, which clips them) and is not used here
for decoding: it only sees the RGB images made below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "find_unreadable", "image_problem", "read_rgb", "to_rgb"]

# torchvision's ImageFolder extensions, plus GIF (its first frame is read).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")

# The value range each high-depth grey mode nominally spans; values outside it are min-max scaled.
_NOMINAL_RANGE = {"I": (0.0, 65535.0), "F": (0.0, 1.0)}


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB (the current frame: the first, for a file just opened).

    16-bit greys (``I;16*``, and ``I`` holding 0..65535 as Pillow opens 16-bit PNG and TIFF) map
    0..65535 to 0..255; float greys (``F``) map 0..1 to 0..255; an ``I`` or ``F`` image with values
    outside that range maps its own min..max to 0..255 (non-finite values count as 0). Every other
    mode goes through Pillow's ``convert("RGB")``, as before, bit for bit.
    """
    mode = image.mode
    if not (mode.startswith("I;16") or mode in _NOMINAL_RANGE):
        return image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)
    pixels = np.where(np.isfinite(pixels), pixels, 0.0)
    low, high = _NOMINAL_RANGE.get(mode, (0.0, 65535.0))
    if pixels.size and (pixels.min() < low or pixels.max() > high):
        low, high = float(pixels.min()), float(pixels.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    grey = np.floor((pixels - low) * scale + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def read_rgb(path: str) -> Image.Image:
    """The image file at ``path`` as 8-bit RGB (see :func:`to_rgb`)."""
    with open(path, "rb") as f:
        return to_rgb(Image.open(f))


def image_problem(path: str, decode: bool = True) -> str | None:
    """Why ``path`` cannot be read as an image, in one line, or None when it can.

    ``decode`` reads every pixel (finds truncated files); without it only the header is read,
    which is cheap and finds empty files, files of another kind and unknown formats.
    """
    try:
        if os.path.getsize(path) == 0:
            return "an empty file (0 bytes)"
        with open(path, "rb") as f:
            image = Image.open(f)
            if decode:
                to_rgb(image)
    except UnidentifiedImageError:
        return "not an image file Pillow recognises"
    except Exception as err:  # any decoder error (OSError, SyntaxError, ValueError...): unreadable
        text = (str(err).splitlines() or [""])[0][:200]
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return None


def find_unreadable(files: Sequence[str], decode: bool, workers: int = 1) -> list[tuple[str, str]]:
    """``(path, reason)`` of every file of ``files`` that cannot be read, in ``files``' order.

    ``workers`` threads read in parallel (file reads and Pillow's decoders release the GIL).
    """
    check = partial(image_problem, decode=decode)
    if workers > 1 and len(files) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            problems = list(pool.map(check, files))
    else:
        problems = [check(path) for path in files]
    return [(path, why) for path, why in zip(files, problems, strict=True) if why is not None]
