"""Classification datasets by name, with train/val/test splits and indexed samples."""

from __future__ import annotations

import gzip
import http.client
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from ..errors import ConfigError, DatasetNotFoundError, DownloadError, UserError

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "IndexedDataset",
    "MNISTFiles",
    "build_split",
    "dataset_targets",
    "stratified_split",
]

SPLITS = ("train", "val", "test")


class DigitsDataset(Dataset):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images): data with no download."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # 0..16 grey levels -> 0..255
        self.images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
        self.targets = [int(t) for t in digits.target]
        self.classes = [str(i) for i in range(10)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i], mode="L"), self.targets[i]


class MNISTFiles(Dataset):
    """MNIST read straight from LeCun's idx files, gzipped or not, in ``root`` or ``root/MNIST/raw``.

    Only the split's two files are needed (``t10k-*`` for test, ``train-*`` for train), so a
    folder holding just the original test files serves a zero-shot test. Digits are mode "L"
    PIL images, as torchvision's MNIST gives them.
    """

    def __init__(self, root: str, split: str) -> None:
        self.classes = [str(i) for i in range(10)]
        images, labels = self._stems(split)
        self.images = _read_idx(root, images, 3)
        self.targets = [int(t) for t in _read_idx(root, labels, 1)]
        if len(self.images) != len(self.targets):
            raise DatasetNotFoundError(
                f"mnist ({split}) under {root!r}: {len(self.images)} images but {len(self.targets)} "
                f"labels; {images} and {labels} are from different sets. Replace them with the originals."
            )

    @staticmethod
    def _stems(split: str) -> tuple[str, str]:
        """The split's image and label file names, without ``.gz``."""
        prefix = "t10k" if split == "test" else "train"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    @classmethod
    def present(cls, root: str, split: str) -> bool:
        """Whether both of the split's files are there (readable or not)."""
        return all(_find_idx(root, stem) for stem in cls._stems(split))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i], mode="L"), self.targets[i]


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


def dataset_targets(dataset: Any) -> list[int]:
    """Integer labels of every sample, read without decoding images where the dataset allows."""
    if isinstance(dataset, Subset):
        parent = dataset_targets(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    for attr in ("targets", "labels", "_labels"):
        values = getattr(dataset, attr, None)
        if values is not None:
            return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def stratified_split(targets: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (rest, held-out) with ``fraction`` of every class held out, seeded."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(targets)
    held: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_held = round(len(members) * fraction)
        if len(members) > 1:
            n_held = min(max(n_held, 1), len(members) - 1)
        held.extend(members[:n_held].tolist())
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def _require_dir(path: str, dataset: str, hint: str) -> str:
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"{dataset}: no folder {path}. {hint}")
    return path


def _image_folder(root: str, split: str, dataset: str) -> Dataset:
    from torchvision.datasets import ImageFolder

    path = _require_dir(
        os.path.join(root, split),
        dataset,
        f"Expected the layout {root}/{{train,val,test}}/<class>/<image>; pass --data.root with that layout.",
    )
    return ImageFolder(path)


def _load(name: str, root: str, split: str, download: bool, factory: Callable[[], Dataset]) -> Dataset:
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


def _torchvision(name: str, root: str, split: str, download: bool) -> Dataset:
    """The official split ``split`` of a torchvision dataset."""
    from torchvision import datasets as tv

    def factory() -> Dataset:
        train = split == "train"
        if name == "cifar10":
            return tv.CIFAR10(root, train=train, download=download)
        if name == "cifar100":
            return tv.CIFAR100(root, train=train, download=download)
        if name == "mnist":
            if download and not MNISTFiles.present(root, split):  # into root/MNIST/raw, read from there
                tv.MNIST(root, train=train, download=True)
            return MNISTFiles(root, split)
        if name == "stl10":
            return tv.STL10(root, split=split, download=download)
        if name == "food101":
            return tv.Food101(root, split=split, download=download)
        if name == "flowers102":
            return tv.Flowers102(root, split=split, download=download)
        if name == "dtd":
            return tv.DTD(root, split=split, download=download)
        if name == "oxford_pets":
            return tv.OxfordIIITPet(root, split="trainval" if train else "test", download=download)
        raise KeyError(name)

    return _load(name, root, split, download, factory)


# Datasets whose official splits lack "val" (and for some "test"): those are carved out, seeded.
_OFFICIAL_SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "mnist": ("train", "test"),
    "stl10": ("train", "test"),
    "food101": ("train", "test"),
    "flowers102": SPLITS,
    "dtd": SPLITS,
    "oxford_pets": ("train", "test"),
    "imagenet": ("train", "test"),  # test is ImageNet's val folder
    "eurosat": (),
    "digits": (),
    "imagefolder": SPLITS,  # val and test when the folders exist
}
DATASETS = tuple(_OFFICIAL_SPLITS)
# Held-out share of the whole set for datasets shipped without any split.
TEST_FRACTION = 0.2


def _whole(name: str, root: str, download: bool) -> Dataset:
    if name == "digits":
        return DigitsDataset()
    if name == "eurosat":
        from torchvision.datasets import EuroSAT

        return _load(name, root, "all", download, lambda: EuroSAT(root, download=download))
    raise KeyError(name)


def _official(name: str, root: str, split: str, download: bool) -> Dataset:
    if name == "imagefolder":
        return _image_folder(root, split, name)
    if name == "imagenet":
        return _image_folder(root, "val" if split == "test" else split, name)
    return _torchvision(name, root, split, download)


def has_official_split(name: str, root: str, split: str) -> bool:
    if name == "imagefolder":
        return os.path.isdir(os.path.join(root, split))
    return split in _OFFICIAL_SPLITS[name]


def build_split(name: str, root: str, split: str, download: bool, val_fraction: float, seed: int) -> Dataset:
    """The ``split`` ("train", "val" or "test") of dataset ``name`` (untransformed samples).

    Missing official splits are carved out with seeded stratified splits: "test" as 20% of a
    dataset that has no split at all, "val" as ``val_fraction`` of the official train split
    (and then "train" is the rest, so train + val is always the whole official train split).
    """
    if name not in _OFFICIAL_SPLITS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if split == "test":
        if has_official_split(name, root, "test"):
            return _official(name, root, "test", download)
        if name == "imagefolder":
            raise DatasetNotFoundError(
                f"imagefolder: no folder {os.path.join(root, 'test')}; pass --data.root with the "
                f"layout {root}/{{train,val,test}}/<class>/<image>"
            )
        whole = _whole(name, root, download)
        return Subset(whole, stratified_split(dataset_targets(whole), TEST_FRACTION, seed)[1])
    if has_official_split(name, root, "val"):
        return _official(name, root, split, download)
    # No official val: it is carved from the official train split (or the non-test part of the
    # whole), and "train" is the rest, so train + val always covers the official train split.
    if has_official_split(name, root, "train"):
        full_train = _official(name, root, "train", download)
    else:
        whole = _whole(name, root, download)
        full_train = Subset(whole, stratified_split(dataset_targets(whole), TEST_FRACTION, seed)[0])
    train_idx, val_idx = stratified_split(dataset_targets(full_train), val_fraction, seed)
    return Subset(full_train, val_idx if split == "val" else train_idx)


def folder_classes(dataset: Dataset) -> list[str] | None:
    """Class folder names of an ImageFolder-like dataset (through Subsets)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    return list(classes) if classes is not None else None


class IndexedDataset(Dataset):
    """Applies ``transform`` and yields ``(image, label, index)``; ``index`` is the position in the split."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], torch.Tensor]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label = self.dataset[index]
        return self.transform(image), int(label), index
