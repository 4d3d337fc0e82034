"""What every source family's split is: images with public integer labels, and their identity.

A split is either an :class:`ImageFiles` (one file per sample) or an :class:`ImageArrays`
(decoded pixels in memory), possibly inside ``torch.utils.data.Subset``s for carved splits.
Both say what identifies their samples, so the feature cache never needs to know a dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from ..errors import ConfigError, UnreadableImageError
from .images import read_rgb

__all__ = [
    "ImageArrays",
    "ImageFiles",
    "IndexedDataset",
    "LabeledImages",
    "MultiLabelImageFiles",
    "dataset_fingerprint",
    "dataset_targets",
    "folder_classes",
    "unreadable_marks",
]


class LabeledImages(Dataset):
    """A split's samples ``(PIL image, label)``, with ``targets`` (one int per sample) and ``classes``.

    ``classes`` is the data's own class list where it has one (None otherwise); class names
    given by the user are checked against its length.
    """

    targets: list[int]
    classes: list[str] | None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        raise NotImplementedError

    def identity(self) -> Iterator[bytes]:
        """Byte strings that change whenever the samples' files, pixels or labels change."""
        raise NotImplementedError


class ImageFiles(LabeledImages):
    """One image file per sample, decoded to 8-bit RGB when read (:func:`~.images.to_rgb`).

    ``split`` names the split in the error raised for a file that cannot be decoded.
    """

    def __init__(
        self,
        files: Sequence[str],
        targets: Sequence[int],
        classes: Sequence[str] | None,
        split: str | None = None,
    ) -> None:
        if len(files) != len(targets):
            raise ValueError(f"{len(files)} files but {len(targets)} labels")
        self.files = [os.fspath(f) for f in files]
        self.targets = [int(t) for t in targets]
        self.classes = list(classes) if classes is not None else None
        self.split = split

    @classmethod
    def from_image_folder(cls, folder: Any) -> ImageFiles:
        """From a ``torchvision.datasets.ImageFolder`` (its public ``samples`` and ``classes``)."""
        return cls(
            [path for path, _ in folder.samples], [label for _, label in folder.samples], folder.classes
        )

    def select(self, keep: Sequence[int], split: str | None) -> ImageFiles:
        """The samples at ``keep`` (e.g. without unreadable files), labelled as ``split``."""
        return ImageFiles([self.files[i] for i in keep], [self.targets[i] for i in keep], self.classes, split)

    def read(self, i: int) -> Image.Image:
        """Image ``i`` as 8-bit RGB; an undecodable file is an UnreadableImageError naming it."""
        try:
            return read_rgb(self.files[i])
        except Exception as err:  # any decoder error: name the file instead of a Pillow traceback
            raise UnreadableImageError.naming(
                str(self.files[i]), self.split, err, "replace or delete it, or "
            ) from None

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.read(i), self.targets[i]

    def identity(self) -> Iterator[bytes]:
        # Size and mtime stand in for the pixels: hashing every image would cost a full read.
        for path, label in zip(self.files, self.targets, strict=True):
            st = os.stat(path)
            yield f"{os.path.abspath(path)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode()


class ImageArrays(LabeledImages):
    """Decoded uint8 images in memory, ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], classes: Sequence[str] | None) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes) if classes is not None else None

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i]), self.targets[i]

    def identity(self) -> Iterator[bytes]:
        yield np.ascontiguousarray(self.images).tobytes()
        yield repr(self.targets).encode()


class MultiLabelImageFiles(ImageFiles):
    """One image file per sample with any number of classes (Pascal VOC 2007).

    A sample's label is a multi-hot float tensor over the classes (``labels[i]``); ``targets``
    holds each sample's first class (or -1), for counting only: the data is scored from full
    scores (mAP), never by class index.
    """

    def __init__(
        self,
        files: Sequence[str],
        labels: np.ndarray,
        classes: Sequence[str],
        split: str | None = None,
    ) -> None:
        labels = np.asarray(labels, dtype=bool)
        if labels.shape != (len(files), len(classes)):
            raise ValueError(
                f"labels of shape {labels.shape} for {len(files)} files and {len(classes)} classes"
            )
        first = [int(row.argmax()) if row.any() else -1 for row in labels]
        super().__init__(files, first, classes, split)
        self.labels = labels

    def select(self, keep: Sequence[int], split: str | None) -> MultiLabelImageFiles:
        assert self.classes is not None
        return MultiLabelImageFiles(
            [self.files[i] for i in keep], self.labels[list(keep)], self.classes, split
        )

    def __getitem__(self, i: int) -> tuple[Image.Image, torch.Tensor]:  # type: ignore[override]
        return self.read(i), torch.from_numpy(self.labels[i].astype(np.float32))

    def identity(self) -> Iterator[bytes]:
        yield from super().identity()
        yield np.packbits(self.labels).tobytes()


def dataset_fingerprint(dataset: Dataset) -> str:
    """A digest of a split's samples (which files with size and mtime, or which pixels, and labels).

    Raises TypeError for a dataset that is neither a :class:`LabeledImages` nor a Subset of one:
    a cache keyed on what it cannot see could be stale.
    """
    digest = hashlib.sha256(type(dataset).__name__.encode())
    if isinstance(dataset, Subset):
        digest.update(dataset_fingerprint(dataset.dataset).encode())
        digest.update(np.asarray(dataset.indices, dtype=np.int64).tobytes())
        return digest.hexdigest()
    if not isinstance(dataset, LabeledImages):
        raise TypeError(f"cannot fingerprint a {type(dataset).__name__}; expected LabeledImages or a Subset")
    for part in dataset.identity():
        digest.update(part)
    digest.update(str(len(dataset)).encode())
    return digest.hexdigest()


def dataset_targets(dataset: Dataset) -> list[int]:
    """Integer labels of every sample, read without decoding images where the dataset allows.

    Raises ConfigError for multi-label data, which has no single class per sample.
    """
    if isinstance(dataset, MultiLabelImageFiles):
        raise ConfigError(
            "a multi-label dataset (several classes per image) has no class index per sample: it cannot "
            "be split by class or fitted by a linear probe; evaluate its official splits zero-shot"
        )
    if isinstance(dataset, Subset):
        parent = dataset_targets(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]


def folder_classes(dataset: Dataset) -> list[str] | None:
    """The data's own class list (through Subsets), or None when it has none."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    return list(classes) if classes is not None else None


class IndexedDataset(Dataset):
    """Applies ``transform`` and yields ``(image, label, index)``; ``index`` is the position in the split.

    With ``mark_unreadable``, an image that cannot be decoded (an UnreadableImageError: a
    truncated file passes the up-front header check) is not raised here, in one process of a
    DDP run, where the others would fail or hang at their next collective: the sample comes as
    ``(blank image, label 0 or a zero multi-hot row, -(index + 1))``, so batches keep their
    structure and every step runs as usual, and :meth:`FrozenBackboneTask.raise_unreadable
    <clip_lightning.tasks.base.FrozenBackboneTask.raise_unreadable>` finds the marks among the
    kept indices (:func:`unreadable_marks`) and raises on every process before any metric.
    """

    def __init__(
        self, dataset: Dataset, transform: Callable[[Any], torch.Tensor], mark_unreadable: bool = False
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.mark_unreadable = mark_unreadable

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor, int]:
        try:
            image, label = self.dataset[index]
        except UnreadableImageError:
            if not self.mark_unreadable:
                raise
            return self.transform(Image.new("RGB", (32, 32))), _blank_label(self.dataset), -(index + 1)
        # multi-label data gives a multi-hot tensor per image; batches stack them [B, classes]
        return self.transform(image), label if isinstance(label, torch.Tensor) else int(label), index


def unreadable_marks(index: torch.Tensor) -> list[int]:
    """The positions in the split of the samples an :class:`IndexedDataset` marked unreadable among
    the indices ``index`` (``-(i + 1)`` stands for sample ``i``), each once, in order."""
    return sorted({-int(i) - 1 for i in index[index < 0].tolist()})


def _blank_label(dataset: Dataset) -> int | torch.Tensor:
    # Shaped like the split's labels so that the batch collates, and a valid class (0) so that
    # every step runs: the sample is reported, never scored.
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    multi_hot = (
        dataset.labels if isinstance(dataset, MultiLabelImageFiles) else getattr(dataset, "multi_hot", None)
    )
    if multi_hot is not None:  # a multi-label WebDataset holds its rows as ``multi_hot``
        return torch.zeros(np.shape(multi_hot)[1], dtype=torch.float32)
    return 0
