"""Data laid out by the user: ``root/{train,val,test}/<class>/<image>``, and ImageNet."""

from __future__ import annotations

import os

from ..errors import DatasetNotFoundError
from .registry import SPLITS
from .samples import ImageFiles, LabeledImages

__all__ = ["folder_splits", "image_folder", "imagefolder", "imagenet"]


def image_folder(path: str, dataset: str, hint: str) -> ImageFiles:
    """The images under ``path/<class>/``, classes in sorted folder order (torchvision's ImageFolder)."""
    from torchvision.datasets import ImageFolder

    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"{dataset}: no folder {path}. {hint}")
    return ImageFiles.from_image_folder(ImageFolder(path))


def _layout_hint(root: str) -> str:
    return (
        f"Expected the layout {root}/{{train,val,test}}/<class>/<image>; pass --data.root with that layout."
    )


def folder_splits(root: str) -> tuple[str, ...]:
    """Which of train/val/test are folders under ``root``."""
    return tuple(s for s in SPLITS if os.path.isdir(os.path.join(root, s)))


def imagefolder(root: str, split: str, download: bool) -> LabeledImages:
    """``root/<split>/<class>/<image>``; nothing to download."""
    path = os.path.join(root, split)
    if split == "test" and not os.path.isdir(path):  # nothing to carve a test split from
        raise DatasetNotFoundError(
            f"imagefolder: no folder {path}; pass --data.root with the "
            f"layout {root}/{{train,val,test}}/<class>/<image>"
        )
    return image_folder(path, "imagefolder", _layout_hint(root))


def imagenet(root: str, split: str, download: bool) -> LabeledImages:
    """ILSVRC-2012 as ``root/{train,val}/<wnid>/<image>``; its val folder is the test split."""
    return image_folder(
        os.path.join(root, "val" if split == "test" else split), "imagenet", _layout_hint(root)
    )
