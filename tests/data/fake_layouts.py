"""Fake copies of the first datasets (and the helpers every writer shares): each in its real layout."""

from __future__ import annotations

import gzip
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from clip_lightning.datasets import dataset_prompts
from clip_lightning.datasets.imagenet_variants import imagenet_wnids

Writer = Callable[[Path], None]


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def image(path: Path, rng: np.random.Generator, size: int = 8) -> None:
    """A random ``size`` x ``size`` RGB image, in the format its suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def prompt_names(key: str) -> list[str]:
    return [str(c) for c in dataset_prompts(key)[0]]


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def cifar10(root: Path) -> None:
    rng, base = rng_for("cifar10"), root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    batch = {"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), "labels": [3, 0, 9, 3, 1, 5]}
    (base / "test_batch").write_bytes(pickle.dumps(batch))
    (base / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [n.replace(" ", "_") for n in prompt_names("cifar10")]})
    )


def cifar100(root: Path) -> None:
    rng, base = rng_for("cifar100"), root / "cifar-100-python"
    base.mkdir(parents=True)
    test = {
        "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "fine_labels": [99, 5, 0, 5],
        "coarse_labels": [0, 1, 2, 1],
    }
    (base / "test").write_bytes(pickle.dumps(test))
    (base / "meta").write_bytes(
        pickle.dumps({"fine_label_names": [n.replace(" ", "_") for n in prompt_names("cifar100")]})
    )


def mnist(root: Path) -> None:
    rng = rng_for("mnist")
    for stem, array in (
        ("t10k-images-idx3-ubyte", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)),
        ("t10k-labels-idx1-ubyte", np.array([7, 2, 1, 0, 4], np.uint8)),
    ):
        header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{stem}.gz").write_bytes(gzip.compress(header + array.tobytes()))


def stl10(root: Path) -> None:
    rng, base = rng_for("stl10"), root / "stl10_binary"
    base.mkdir(parents=True)
    rng.integers(0, 256, 2 * 3 * 96 * 96, dtype=np.uint8).tofile(base / "test_X.bin")
    np.array([1, 10], np.uint8).tofile(base / "test_y.bin")  # 1-based on disk
    write_lines(base / "class_names.txt", prompt_names("stl10"))


def food101(root: Path) -> None:
    rng, base = rng_for("food101"), root / "food-101"
    classes = [n.replace(" ", "_") for n in prompt_names("food101")]
    test = {c: [f"{c}/{i}" for i in range(2)] if c in classes[:3] else [] for c in classes}
    for name, entries in (("train", {c: [] for c in classes}), ("test", test)):
        (base / "meta").mkdir(parents=True, exist_ok=True)
        (base / "meta" / f"{name}.json").write_text(json.dumps(entries))
    for paths in test.values():
        for p in paths:
            image(base / "images" / f"{p}.jpg", rng)


def flowers102(root: Path) -> None:
    from scipy.io import savemat

    rng, base = rng_for("flowers102"), root / "flowers-102"
    base.mkdir(parents=True)
    savemat(
        base / "setid.mat", {"trnid": np.array([4, 1]), "valid": np.array([2, 6]), "tstid": np.array([5, 3])}
    )
    savemat(base / "imagelabels.mat", {"labels": np.array([3, 1, 102, 3, 7, 1])})  # 1-based
    for i in range(1, 7):
        image(base / "jpg" / f"image_{i:05d}.jpg", rng)


def dtd(root: Path) -> None:
    rng, base = rng_for("dtd"), root / "dtd" / "dtd"
    lines = [f"{c}/{c}_0001.jpg" for c in prompt_names("dtd")]  # torchvision takes the classes from the list
    for split in ("train", "val", "test"):
        write_lines(base / "labels" / f"{split}1.txt", lines)
    for line in lines:
        image(base / "images" / line, rng)


def oxford_pets(root: Path) -> None:
    rng, base = rng_for("oxford_pets"), root / "oxford-iiit-pet"
    # image id: the breed with "_" (cats capitalized); label, species (1 cat, 2 dog), breed id
    rows = [
        f"{name.replace(' ', '_')}_1 {i + 1} {1 if name[0].isupper() else 2} 1"
        for i, name in enumerate(prompt_names("oxford_pets"))
    ]
    for split in ("trainval", "test"):
        write_lines(base / "annotations" / f"{split}.txt", rows)
    for row in rows:
        image(base / "images" / f"{row.split()[0]}.jpg", rng)


def eurosat(root: Path) -> None:
    rng = rng_for("eurosat")
    folders = [
        "AnnualCrop",
        "Forest",
        "HerbaceousVegetation",
        "Highway",
        "Industrial",
        "Pasture",
        "PermanentCrop",
        "Residential",
        "River",
        "SeaLake",
    ]
    for cls in folders:
        for i in range(3):
            image(root / "eurosat" / "2750" / cls / f"{cls}_{i}.jpg", rng)


def imagefolder(root: Path) -> None:
    rng = rng_for("imagefolder")
    for split, n in (("train", 2), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                image(root / split / cls / f"{i}.png", rng)


def imagenet(root: Path) -> None:
    rng = rng_for("imagenet")
    for wnid in imagenet_wnids():
        image(root / "val" / wnid / f"ILSVRC2012_val_{wnid}.JPEG", rng)


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
