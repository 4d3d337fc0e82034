from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from torchvision import datasets as tv
from torchvision.datasets.mnist import read_image_file, read_label_file

from clip_lightning.datasets.splits import build_split, dataset_targets, stratified_split
from clip_lightning.errors import ConfigError, DatasetNotFoundError, DownloadError

from .helpers import make_image_folder


def test_stratified_split_is_disjoint_seeded_and_per_class() -> None:
    targets = [i % 4 for i in range(200)]
    rest, held = stratified_split(targets, 0.1, seed=3)
    assert sorted(rest + held) == list(range(200))
    assert Counter(targets[i] for i in held) == dict.fromkeys(range(4), 5)
    assert stratified_split(targets, 0.1, seed=3) == (rest, held)
    assert stratified_split(targets, 0.1, seed=4) != (rest, held)
    with pytest.raises(ConfigError):
        stratified_split(targets, 1.5, seed=0)


def test_digits_splits_cover_everything_once() -> None:
    splits = {s: build_split("digits", "unused", s, False, 0.1, 0) for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == 1797
    positions = [set(d.dataset.indices[i] for i in d.indices) for d in (splits["train"], splits["val"])]
    assert not positions[0] & positions[1]
    image, label = splits["test"][0]
    assert image.mode == "L" and image.size == (8, 8) and 0 <= label < 10


def test_image_folder_without_val_carves_it_from_train(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a_b", "c"], {"train": 10, "test": 3})
    train = build_split("imagefolder", str(tmp_path), "train", False, 0.2, 0)
    val = build_split("imagefolder", str(tmp_path), "val", False, 0.2, 0)
    test = build_split("imagefolder", str(tmp_path), "test", False, 0.2, 0)
    assert (len(train), len(val), len(test)) == (16, 4, 6)
    assert sorted(dataset_targets(val)) == [0, 0, 1, 1]


def test_missing_data_is_reported_with_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"--data\.download true"):
        build_split("cifar10", str(tmp_path), "test", False, 0.1, 0)
    with pytest.raises(DatasetNotFoundError, match=r"--data\.root"):
        build_split("imagefolder", str(tmp_path / "nothing"), "test", False, 0.1, 0)
    with pytest.raises(ConfigError, match="unknown dataset"):
        build_split("cifar11", str(tmp_path), "test", False, 0.1, 0)


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An idx file as LeCun's: magic 0x0800 + ndim, big-endian dimensions, unsigned bytes."""
    data = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _assert_mnist_equals_torchvision_reader(dataset: object, images: Path, labels: Path) -> None:
    """torchvision's own idx readers (uncompressed files) are the oracle."""
    pixels, targets = read_image_file(str(images)).numpy(), read_label_file(str(labels)).tolist()
    assert len(dataset) == len(targets) and dataset_targets(dataset) == targets  # type: ignore[arg-type]
    for i in (0, len(targets) // 2, len(targets) - 1):
        image, label = dataset[i]  # type: ignore[index]
        assert image.mode == "L" and np.array_equal(np.asarray(image), pixels[i]) and label == targets[i]


@pytest.mark.parametrize("layout", ["flat, gzipped (as LeCun ships them)", "torchvision's MNIST/raw"])
def test_mnist_reads_the_original_idx_files_of_the_split_it_needs(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    gz = layout.startswith("flat")
    folder = tmp_path / "data" if gz else tmp_path / "data" / "MNIST" / "raw"
    _write_idx(folder / "t10k-images-idx3-ubyte", images, gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels, gz)
    ref = tmp_path / "ref"
    _write_idx(ref / "images", images, False)
    _write_idx(ref / "labels", labels, False)

    test = build_split("mnist", str(tmp_path / "data"), "test", False, 0.1, 0)  # no train files needed
    _assert_mnist_equals_torchvision_reader(test, ref / "images", ref / "labels")
    with pytest.raises(DatasetNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\] was not found"):
        build_split("mnist", str(tmp_path / "data"), "val", False, 0.1, 0)


def test_mnist_refuses_a_cut_or_mismatched_idx_file(tmp_path: Path) -> None:
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), False)
    with pytest.raises(DatasetNotFoundError, match="4 images but 3 labels"):
        build_split("mnist", str(tmp_path), "test", False, 0.1, 0)
    cut = tmp_path / "t10k-images-idx3-ubyte"
    cut.write_bytes(cut.read_bytes()[:-10])
    with pytest.raises(DatasetNotFoundError, match="not a complete idx file"):
        build_split("mnist", str(tmp_path), "test", False, 0.1, 0)


@pytest.mark.shared
def test_mnist_on_the_real_test_set_equals_torchvision_reader(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "mnist-test"
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(folder / f"{stem}.gz") as src, open(tmp_path / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    test = build_split("mnist", str(folder), "test", False, 0.1, 0)
    assert len(test) == 10_000
    _assert_mnist_equals_torchvision_reader(
        test, tmp_path / "t10k-images-idx3-ubyte", tmp_path / "t10k-labels-idx1-ubyte"
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
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 4], np.uint8), True)
    assert dataset_targets(build_split("mnist", str(tmp_path), "test", True, 0.1, 0)) == [3, 4]
