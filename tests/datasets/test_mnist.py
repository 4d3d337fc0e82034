from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets.mnist import read_image_file, read_label_file

from clip_lightning.datasets import MNISTFiles, build_split, dataset_targets
from clip_lightning.errors import DatasetNotFoundError
from tests.helpers import write_idx


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
    write_idx(folder / "t10k-images-idx3-ubyte", images, gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels, gz)
    ref = tmp_path / "ref"
    write_idx(ref / "images", images, False)
    write_idx(ref / "labels", labels, False)

    test = build_split("mnist", str(tmp_path / "data"), "test", False, 0.1, 0)  # no train files needed
    _assert_mnist_equals_torchvision_reader(test, ref / "images", ref / "labels")
    assert MNISTFiles.present(str(tmp_path / "data"), "test")
    assert not MNISTFiles.present(str(tmp_path / "data"), "train")
    with pytest.raises(DatasetNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\] was not found"):
        build_split("mnist", str(tmp_path / "data"), "val", False, 0.1, 0)


def test_mnist_refuses_a_cut_or_mismatched_idx_file(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), False)
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
