"""scikit-learn's bundled 8x8 handwritten digits: data with no download."""

from __future__ import annotations

import numpy as np

from .samples import ImageArrays, LabeledImages

__all__ = ["DigitsDataset", "digits"]


class DigitsDataset(ImageArrays):
    """The 1,797 digits as mode "L" images, labels 0-9."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        data = load_digits()
        # 0..16 grey levels -> 0..255
        images = (data.images * (255.0 / 16.0)).round().astype(np.uint8)
        super().__init__(images, data.target.tolist(), [str(i) for i in range(10)])


def digits(root: str, split: str, download: bool) -> LabeledImages:
    """The whole set (it has no official split); ``root`` is unused."""
    return DigitsDataset()
