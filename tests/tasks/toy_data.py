"""Small in-memory datasets for the zero-shot evaluator's scoring paths: multi-label and 2-class.

Register them for a test (``register(toy_multilabel())``) and unregister after; DDP tests register
them in the script each process runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

from clip_lightning.datasets import DatasetInfo, ImageArrays

MULTILABEL_CLASSES = ["cat", "dog", "car", "tree"]


class MultiHotArrays(ImageArrays):
    """Images in memory whose labels are multi-hot float vectors (as Pascal VOC 2007's)."""

    def __init__(self, images: np.ndarray, multi_hot: np.ndarray, classes: list[str]) -> None:
        super().__init__(images, [-1] * len(images), classes)
        self.multi_hot = multi_hot.astype(np.float32)

    def __getitem__(self, i: int) -> tuple[Image.Image, torch.Tensor]:  # type: ignore[override]
        return Image.fromarray(self.images[i]), torch.from_numpy(self.multi_hot[i])

    def identity(self) -> Iterator[bytes]:
        yield from super().identity()
        yield self.multi_hot.tobytes()


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def toy_multilabel(name: str = "toy_multilabel", n: int = 31, seed: int = 0) -> DatasetInfo:
    """``n`` random images, each with one to four of :data:`MULTILABEL_CLASSES`; a test split only."""
    rng = np.random.default_rng(seed + 1)
    multi_hot = rng.random((n, len(MULTILABEL_CLASSES))) < 0.4
    multi_hot[np.arange(n), np.arange(n) % len(MULTILABEL_CLASSES)] = True  # every class has positives

    def load(root: str, split: str, download: bool) -> MultiHotArrays:
        return MultiHotArrays(_images(n, seed), multi_hot, MULTILABEL_CLASSES)

    return DatasetInfo(
        name, load, ("test",), "random multi-label images", "tests", None,
        main_metric="mean_average_precision", multilabel=True,
    )  # fmt: skip


def toy_binary(name: str = "toy_binary", n: int = 40, seed: int = 0) -> DatasetInfo:
    """``n`` random images of two classes, scored by ROC AUC (as Hateful Memes); a test split only."""
    targets = [i % 2 for i in range(n)]

    def load(root: str, split: str, download: bool) -> ImageArrays:
        return ImageArrays(_images(n, seed), targets, ["harmless", "hateful"])

    return DatasetInfo(name, load, ("test",), "random 2-class images", "tests", None, main_metric="roc_auc")
