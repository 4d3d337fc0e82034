"""Datasets torchvision downloads: torchvision fetches and checks them, these read them.

Labels and files are read from the dataset's own public attributes or its own split files
(the layouts torchvision downloads), never from torchvision's private attributes.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import DatasetNotFoundError, DownloadError, UserError
from .samples import ImageArrays, ImageFiles, LabeledImages

__all__ = [
    "cifar10",
    "cifar100",
    "dtd",
    "eurosat",
    "fetch",
    "flowers102",
    "food101",
    "oxford_pets",
    "require",
    "stl10",
]

FETCH_HINT = (
    "Pass --data.download true to fetch it with torchvision (needs network), or --data.root pointing at "
    "the folder that holds it."
)


def require(
    name: str, split: str, root: str, paths: Sequence[str], layout: str, how: str = FETCH_HINT
) -> None:
    """DatasetNotFoundError naming the first missing path, what to do (``how``) and the expected layout."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise DatasetNotFoundError(
            f"{name} ({split}): {missing[0]} was not found under --data.root {root!r}. {how} "
            f"Expected layout under the root: {layout}"
        )


def fetch(
    name: str, root: str, split: str, download: bool, factory: Callable[[], LabeledImages]
) -> LabeledImages:
    """``factory()``, with torchvision's missing-data and failed-download errors made clear."""
    try:
        return factory()
    except UserError:
        raise  # already says what to do
    except (RuntimeError, OSError, http.client.HTTPException) as err:
        if download:  # offline, a moved mirror, a cut connection: say what failed and the way out
            raise DownloadError(
                f"{name} ({split}) could not be downloaded into {root!r}: {type(err).__name__}: "
                f"{str(err)[:200]}. Offline, put the dataset there yourself (torchvision's layout) "
                f"and pass --data.download false, or pass --data.root pointing at a folder that holds it."
            ) from None
        if not isinstance(err, RuntimeError) or "not found" not in str(err).lower():
            raise
        raise DatasetNotFoundError(  # torchvision: "Dataset not found or corrupted"
            f"{name} ({split}) was not found under {root!r}. Pass --data.download true to fetch it "
            f"(needs network), or --data.root pointing at the folder that holds it."
        ) from None


def _cifar(name: str, root: str, split: str, download: bool) -> LabeledImages:
    from torchvision import datasets as tv

    cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100

    def factory() -> LabeledImages:
        data = cls(root, train=split == "train", download=download)
        return ImageArrays(data.data, data.targets, data.classes)

    return fetch(name, root, split, download, factory)


def cifar10(root: str, split: str, download: bool) -> LabeledImages:
    """CIFAR-10's official train or test split."""
    return _cifar("cifar10", root, split, download)


def cifar100(root: str, split: str, download: bool) -> LabeledImages:
    """CIFAR-100's official train or test split (fine labels)."""
    return _cifar("cifar100", root, split, download)


def stl10(root: str, split: str, download: bool) -> LabeledImages:
    """STL-10's official train or test split (labelled images only)."""
    from torchvision import datasets as tv

    def factory() -> LabeledImages:
        data = tv.STL10(root, split=split, download=download)
        # stored channels-first; torchvision hands out channels-last images
        images = np.transpose(data.data, (0, 2, 3, 1))
        return ImageArrays(images, data.labels.tolist(), getattr(data, "classes", None))

    return fetch("stl10", root, split, download, factory)


def food101(root: str, split: str, download: bool) -> LabeledImages:
    """Food-101: meta/{split}.json lists each class's images (torchvision's order and labels)."""
    from torchvision import datasets as tv

    def factory() -> LabeledImages:
        data = tv.Food101(root, split=split, download=download)  # fetches, checks the layout
        base = os.path.join(os.path.expanduser(root), "food-101")
        with open(os.path.join(base, "meta", f"{split}.json")) as f:
            metadata = json.load(f)
        files, targets = [], []
        for label, paths in metadata.items():
            files += [os.path.join(base, "images", *f"{p}.jpg".split("/")) for p in paths]
            targets += [data.class_to_idx[label]] * len(paths)
        return ImageFiles(files, targets, data.classes)

    return fetch("food101", root, split, download, factory)


def flowers102(root: str, split: str, download: bool) -> LabeledImages:
    """Oxford Flowers-102: setid.mat lists each split's image ids, imagelabels.mat their labels."""
    from scipy.io import loadmat
    from torchvision import datasets as tv

    def factory() -> LabeledImages:
        data = tv.Flowers102(root, split=split, download=download)  # fetches, checks the files' md5
        base = os.path.join(os.path.expanduser(root), "flowers-102")
        key = {"train": "trnid", "val": "valid", "test": "tstid"}[split]
        ids = loadmat(os.path.join(base, "setid.mat"), squeeze_me=True)[key].tolist()
        labels = loadmat(os.path.join(base, "imagelabels.mat"), squeeze_me=True)["labels"] - 1
        files = [os.path.join(base, "jpg", f"image_{i:05d}.jpg") for i in ids]
        # older torchvision has no class list: then a user's class names are not counted
        return ImageFiles(files, [int(labels[i - 1]) for i in ids], getattr(data, "classes", None))

    return fetch("flowers102", root, split, download, factory)


def dtd(root: str, split: str, download: bool) -> LabeledImages:
    """Describable Textures, partition 1: labels/{split}1.txt lists ``class/file`` lines."""
    from torchvision import datasets as tv

    def factory() -> LabeledImages:
        data = tv.DTD(root, split=split, download=download)  # fetches, checks the layout
        base = os.path.join(os.path.expanduser(root), "dtd", "dtd")
        with open(os.path.join(base, "labels", f"{split}1.txt")) as f:
            entries = [line.strip().split("/") for line in f]
        files = [os.path.join(base, "images", cls, file) for cls, file in entries]
        return ImageFiles(files, [data.class_to_idx[cls] for cls, _ in entries], data.classes)

    return fetch("dtd", root, split, download, factory)


def oxford_pets(root: str, split: str, download: bool) -> LabeledImages:
    """Oxford-IIIT Pets: annotations/{trainval,test}.txt lines ``image_id label species breed_id``."""
    from torchvision import datasets as tv

    official = "trainval" if split == "train" else "test"

    def factory() -> LabeledImages:
        data = tv.OxfordIIITPet(root, split=official, download=download)  # fetches, checks the layout
        base = os.path.join(os.path.expanduser(root), "oxford-iiit-pet")
        with open(os.path.join(base, "annotations", f"{official}.txt")) as f:
            rows = [line.split()[:2] for line in f if line.strip()]
        files = [os.path.join(base, "images", f"{image_id}.jpg") for image_id, _ in rows]
        return ImageFiles(files, [int(label) - 1 for _, label in rows], data.classes)

    return fetch("oxford_pets", root, split, download, factory)


def eurosat(root: str, split: str, download: bool) -> LabeledImages:
    """EuroSAT RGB: one folder per class, no official split (``split`` is "all")."""
    from torchvision import datasets as tv

    def factory() -> LabeledImages:
        return ImageFiles.from_image_folder(tv.EuroSAT(root, download=download))  # an ImageFolder

    return fetch("eurosat", root, split, download, factory)
