"""MNIST read straight from LeCun's idx files; torchvision only downloads them."""

from __future__ import annotations

import gzip
import os

import numpy as np

from ..errors import DatasetNotFoundError
from .samples import ImageArrays, LabeledImages
from .torchvision_sets import fetch

__all__ = ["MNISTFiles", "mnist"]


class MNISTFiles(ImageArrays):
    """MNIST from LeCun's idx files, gzipped or not, in ``root`` or ``root/MNIST/raw``.

    Only the split's two files are needed (``t10k-*`` for test, ``train-*`` for train), so a
    folder holding just the original test files serves a zero-shot test. Digits are mode "L"
    PIL images, as torchvision's MNIST gives them.
    """

    def __init__(self, root: str, split: str) -> None:
        images, labels = self._stems(split)
        pixels = _read_idx(root, images, 3)
        targets = _read_idx(root, labels, 1).tolist()
        if len(pixels) != len(targets):
            raise DatasetNotFoundError(
                f"mnist ({split}) under {root!r}: {len(pixels)} images but {len(targets)} "
                f"labels; {images} and {labels} are from different sets. Replace them with the originals."
            )
        super().__init__(pixels, targets, [str(i) for i in range(10)])

    @staticmethod
    def _stems(split: str) -> tuple[str, str]:
        """The split's image and label file names, without ``.gz``."""
        prefix = "t10k" if split == "test" else "train"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    @classmethod
    def present(cls, root: str, split: str) -> bool:
        """Whether both of the split's files are there (readable or not)."""
        return all(_find_idx(root, stem) for stem in cls._stems(split))


def _find_idx(root: str, stem: str) -> str | None:
    """The path of idx file ``stem`` (or ``stem.gz``) in ``root`` or ``root/MNIST/raw``, if any."""
    folders = [root, os.path.join(root, "MNIST", "raw")]
    paths = [os.path.join(d, stem + ext) for d in folders for ext in ("", ".gz")]
    return next((p for p in paths if os.path.isfile(p)), None)


def _read_idx(root: str, stem: str, ndim: int) -> np.ndarray:
    """An idx file (big-endian header: magic 0x0800 + ndim, then each dimension) as uint8."""
    path = _find_idx(root, stem)
    if path is None:
        raise DatasetNotFoundError(
            f"mnist: {stem}[.gz] was not found in {root!r} or {os.path.join(root, 'MNIST', 'raw')!r}. "
            f"Pass --data.download true to fetch it (needs network), or --data.root pointing at "
            f"the folder that holds LeCun's original files."
        )
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    header = 4 + 4 * ndim
    shape = (
        tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)) if len(raw) >= header else ()
    )
    if raw[:4] != bytes([0, 0, 8, ndim]) or len(raw) != header + int(np.prod(shape)):
        raise DatasetNotFoundError(
            f"mnist: {path} is not a complete idx file of {ndim}-d unsigned bytes (cut short or "
            f"another format); replace it with the original."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def mnist(root: str, split: str, download: bool) -> LabeledImages:
    """MNIST's official train or test split; with ``download``, files already there are used as is."""

    def factory() -> LabeledImages:
        if download and not MNISTFiles.present(root, split):  # into root/MNIST/raw, read from there
            from torchvision.datasets import MNIST

            MNIST(root, train=split == "train", download=True)
        return MNISTFiles(root, split)

    return fetch("mnist", root, split, download, factory)
