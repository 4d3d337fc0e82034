"""The torchvision family on tiny copies of each dataset's own layout, torchvision as the oracle.

Where torchvision checks md5 sums of the real files, its public ``check_integrity`` is
replaced, so that it reads the tiny copy exactly as it would read the original.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from torch.utils.data import Dataset
from torchvision import datasets as tv

from clip_lightning.datasets import (
    build_split,
    dataset_fingerprint,
    dataset_targets,
    folder_classes,
    get_dataset_info,
)
from clip_lightning.errors import DownloadError
from tests.helpers import write_idx

RNG = np.random.default_rng(0)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)


def _pickle(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def _cifar10(root: Path, split: str) -> Dataset:
    base = root / "cifar-10-batches-py"
    _pickle(
        base / "test_batch",
        {"data": RNG.integers(0, 256, (5, 3072), dtype=np.uint8), "labels": [3, 0, 9, 3, 1]},
    )
    _pickle(base / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return tv.CIFAR10(str(root), train=False)


def _cifar100(root: Path, split: str) -> Dataset:
    base = root / "cifar-100-python"
    data = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
    _pickle(base / "train", {"data": data, "fine_labels": [99, 5, 0, 5], "coarse_labels": [0, 1, 2, 1]})
    _pickle(base / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    return tv.CIFAR100(str(root), train=True)


def _stl10(root: Path, split: str) -> Dataset:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    RNG.integers(0, 256, 3 * 3 * 96 * 96, dtype=np.uint8).tofile(base / "test_X.bin")
    np.array([1, 10, 4], np.uint8).tofile(base / "test_y.bin")  # 1-based on disk
    (base / "class_names.txt").write_text("\n".join(f"name{i}" for i in range(10)) + "\n")
    return tv.STL10(str(root), split="test")


def _food101(root: Path, split: str) -> Dataset:
    base = root / "food-101"
    meta = {  # not in sorted order: labels are indices into the sorted class names
        "train": {"waffles": ["waffles/3", "waffles/1"], "apple_pie": ["apple_pie/2"], "bibimbap": []},
        "test": {"waffles": ["waffles/7"], "bibimbap": ["bibimbap/5", "bibimbap/4"], "apple_pie": []},
    }
    for name, entries in meta.items():
        (base / "meta").mkdir(parents=True, exist_ok=True)
        (base / "meta" / f"{name}.json").write_text(json.dumps(entries))
        for paths in entries.values():
            for p in paths:
                _image(base / "images" / f"{p}.jpg")
    return tv.Food101(str(root), split=split)


def _flowers102(root: Path, split: str) -> Dataset:
    base = root / "flowers-102"
    base.mkdir(parents=True)
    savemat(
        base / "setid.mat", {"trnid": np.array([4, 1]), "valid": np.array([2, 6]), "tstid": np.array([5, 3])}
    )
    savemat(base / "imagelabels.mat", {"labels": np.array([3, 1, 102, 3, 7, 1])})  # 1-based
    for i in range(1, 7):
        _image(base / "jpg" / f"image_{i:05d}.jpg")
    return tv.Flowers102(str(root), split=split)


def _dtd(root: Path, split: str) -> Dataset:
    base = root / "dtd" / "dtd"
    lines = {
        "train": ["zigzagged/z_1.jpg", "banded/b_1.jpg"],
        "val": ["banded/b_2.jpg"],
        "test": ["lined/l_1.jpg", "banded/b_3.jpg"],
    }
    for name, entries in lines.items():
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / "labels" / f"{name}1.txt").write_text("".join(f"{e}\n" for e in entries))
        for e in entries:
            _image(base / "images" / e)
    return tv.DTD(str(root), split=split)


def _oxford_pets(root: Path, split: str) -> Dataset:
    base = root / "oxford-iiit-pet"
    rows = {
        "trainval": ["english_setter_12 15 2 3", "Abyssinian_1 1 1 1", "Bengal_3 6 1 2"],
        "test": ["Bengal_9 6 1 2", "english_setter_2 15 2 3"],
    }
    for name, lines in rows.items():
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
        for line in lines:
            _image(base / "images" / f"{line.split()[0]}.jpg")
    return tv.OxfordIIITPet(str(root), split="trainval" if split == "train" else "test")


def _eurosat(root: Path, split: str) -> Dataset:
    for cls, n in (("River", 2), ("Forest", 3)):
        for i in range(n):
            _image(root / "eurosat" / "2750" / cls / f"{cls}_{i}.jpg")
    return tv.EuroSAT(str(root))


LAYOUTS: dict[str, Callable[[Path, str], Dataset]] = {
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "stl10": _stl10,
    "food101": _food101,
    "flowers102": _flowers102,
    "dtd": _dtd,
    "oxford_pets": _oxford_pets,
    "eurosat": _eurosat,
}
CASES = [
    ("cifar10", "test"), ("cifar100", "train"), ("stl10", "test"), ("food101", "train"), ("food101", "test"),
    ("flowers102", "train"), ("flowers102", "val"), ("flowers102", "test"), ("dtd", "train"), ("dtd", "test"),
    ("oxford_pets", "train"), ("oxford_pets", "test"), ("eurosat", "all"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "split"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_official_split_equals_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, split: str
) -> None:
    for module in ("cifar", "stl10", "flowers102"):  # md5 sums of the real files
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", lambda *args, **kwargs: True)
    theirs = LAYOUTS[name](tmp_path, split)
    ours = get_dataset_info(name).load(str(tmp_path), split, False)
    assert len(ours) == len(theirs) > 0  # type: ignore[arg-type]
    assert dataset_targets(ours) == [theirs[i][1] for i in range(len(theirs))]  # type: ignore[arg-type]
    for i in range(len(ours)):
        (image, label), (expected, expected_label) = ours[i], theirs[i]
        assert label == expected_label and image.mode == expected.mode
        assert np.array_equal(np.asarray(image), np.asarray(expected))
    assert folder_classes(ours) == (list(theirs.classes) if hasattr(theirs, "classes") else None)
    assert dataset_fingerprint(ours) == dataset_fingerprint(
        get_dataset_info(name).load(str(tmp_path), split, False)
    )


def test_failed_dataset_download_says_what_failed_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on port 9: the download fails as it does offline."""
    monkeypatch.setattr(tv.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setattr(tv.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    for name in ("cifar10", "mnist"):
        with pytest.raises(DownloadError, match=rf"{name} \(test\) could not be downloaded") as err:
            build_split(name, str(tmp_path), "test", True, 0.1, 0)
        assert "--data.download false" in str(err.value) and "--data.root" in str(err.value)
    # MNIST files already there (LeCun's flat layout, not torchvision's): nothing is downloaded
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 4], np.uint8), True)
    assert dataset_targets(build_split("mnist", str(tmp_path), "test", True, 0.1, 0)) == [3, 4]
