"""Data laid out by the user: ``root/{train,val,test}/<class>/<image>``, and ImageNet.

Every split shares one class list: the train folder's class folders when there is a train
folder (else the union of the splits' class folders). A split's labels are its class folders'
places in that list, matched by name, so a test folder with fewer classes than train is scored
correctly; a split with a class folder that train lacks is an error naming both sides.
"""

from __future__ import annotations

import os

from ..errors import ClassFolderError, DatasetNotFoundError
from .images import IMAGE_EXTENSIONS
from .registry import SPLITS
from .samples import ImageFiles, LabeledImages

__all__ = [
    "aligned_split",
    "class_folders",
    "folder_images",
    "folder_splits",
    "imagefolder",
    "imagenet",
    "labelled_folders",
]


def class_folders(path: str) -> list[str]:
    """The class folders directly under ``path``, sorted (torchvision's ImageFolder order)."""
    with os.scandir(path) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def folder_images(folder: str) -> list[str]:
    """Image files anywhere under ``folder`` (by extension), in torchvision's ImageFolder order."""
    found = []
    for dirpath, _, names in sorted(os.walk(folder, followlinks=True)):
        found += [os.path.join(dirpath, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _some(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _shared_classes(dataset: str, folders: dict[str, str], split: str, own: list[str]) -> list[str]:
    """The class list every split shares; ClassFolderError when ``split`` has classes train lacks."""
    if "train" not in folders:
        return sorted(set().union(*(class_folders(path) for path in folders.values())))
    if split == "train":
        return own
    shared = class_folders(folders["train"])
    extra = sorted(set(own) - set(shared))
    if extra:
        missing = sorted(set(shared) - set(own))
        raise ClassFolderError(
            f"{dataset}: {folders[split]} has class folders that {folders['train']} lacks: {_some(extra)} "
            f"(and {folders['train']} has {_some(missing)} that {folders[split]} lacks). Every split is "
            f"labelled with train's classes, matched by name: add those folders, with images, to "
            f"{folders['train']}, or move or rename them in {folders[split]}"
        )
    return shared


def aligned_split(dataset: str, folders: dict[str, str], split: str, hint: str) -> ImageFiles:
    """Split ``split`` of ``folders`` (split -> its folder), labelled by the shared class list."""
    path = folders[split]
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"{dataset}: no folder {path}. {hint}")
    present = {s: p for s, p in folders.items() if os.path.isdir(p)}
    own = class_folders(path)
    if not own:
        raise DatasetNotFoundError(f"{dataset}: no class folders in {path}. {hint}")
    classes = _shared_classes(dataset, present, split, own)
    index = {name: i for i, name in enumerate(classes)}
    files: list[str] = []
    targets: list[int] = []
    for name in own:
        images = folder_images(os.path.join(path, name))
        if not images:
            raise ClassFolderError(
                f"{dataset} ({split}): class folder {os.path.join(path, name)} holds no images "
                f"(files ending {', '.join(IMAGE_EXTENSIONS)}); add images to it or remove it"
            )
        files += images
        targets += [index[name]] * len(images)
    return ImageFiles(files, targets, classes, split=split)


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
    folders = {s: os.path.join(root, s) for s in SPLITS}
    return aligned_split("imagefolder", folders, split, _layout_hint(root))


def imagenet(root: str, split: str, download: bool) -> LabeledImages:
    """ILSVRC-2012 as ``root/{train,val}/<wnid>/<image>``; its val folder is the test split."""
    folders = {"train": os.path.join(root, "train"), "test": os.path.join(root, "val")}
    return aligned_split("imagenet", folders, split, _layout_hint(root))


def labelled_folders(name: str, split: str, folder: str, classes: list[str]) -> ImageFiles:
    """``folder/<class>/<image>`` labelled by each class folder's place in ``classes`` (a fixed list).

    A class folder that is not in ``classes`` is a ClassFolderError naming it.
    """
    index = {c: i for i, c in enumerate(classes)}
    files: list[str] = []
    targets: list[int] = []
    for cls in class_folders(folder):
        if cls not in index:
            raise ClassFolderError(
                f"{name} ({split}): class folder {os.path.join(folder, cls)} is not one of its "
                f"{len(classes)} classes ({_some(classes, 4)}); move it out of {folder}"
            )
        images = folder_images(os.path.join(folder, cls))
        files += images
        targets += [index[cls]] * len(images)
    return ImageFiles(files, targets, classes, split=split)
