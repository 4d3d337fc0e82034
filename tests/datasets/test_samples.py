"""dataset_fingerprint: the feature cache's key for a split's samples."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import Dataset

from clip_lightning.datasets import (
    ImageArrays,
    IndexedDataset,
    build_split,
    dataset_fingerprint,
    dataset_targets,
)
from tests.helpers import make_image_folder, write_idx


def _folder_fingerprint(root: Path, split: str = "test") -> str:
    return dataset_fingerprint(build_split("imagefolder", str(root), split, False, 0.2, 0))


def test_image_files_fingerprint_follows_files_and_labels(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"train": 5, "test": 3})
    first = _folder_fingerprint(tmp_path)
    assert _folder_fingerprint(tmp_path) == first  # rebuilt: the same
    assert _folder_fingerprint(tmp_path, "val") != _folder_fingerprint(tmp_path, "train")
    image = tmp_path / "test" / "a" / "0.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten in place
    second = _folder_fingerprint(tmp_path)
    assert second != first
    shutil.move(image, tmp_path / "test" / "b" / "0.png")  # same file, another label
    third = _folder_fingerprint(tmp_path)
    assert third not in (first, second)
    (tmp_path / "test" / "b" / "9.png").write_bytes(image.with_name("1.png").read_bytes())  # one more
    assert _folder_fingerprint(tmp_path) not in (first, second, third)


def test_array_fingerprint_follows_pixels_labels_and_carved_indices(tmp_path: Path) -> None:
    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([1, 2, 3, 4], np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, False)
    first = dataset_fingerprint(build_split("mnist", str(tmp_path), "test", False, 0.1, 0))
    assert dataset_fingerprint(build_split("mnist", str(tmp_path), "test", False, 0.1, 0)) == first
    images[2, 5, 5] = 1
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, False)
    second = dataset_fingerprint(build_split("mnist", str(tmp_path), "test", False, 0.1, 0))
    assert second != first
    labels[0] = 7
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, False)
    third = dataset_fingerprint(build_split("mnist", str(tmp_path), "test", False, 0.1, 0))
    assert third not in (first, second)

    digits = {
        (split, seed): dataset_fingerprint(build_split("digits", "unused", split, False, 0.1, seed))
        for split in ("train", "val", "test")
        for seed in (0, 1)
    }
    assert len(set(digits.values())) == len(digits)
    assert dataset_fingerprint(build_split("digits", "unused", "val", False, 0.1, 0)) == digits["val", 0]


def test_fingerprint_refuses_what_it_cannot_see() -> None:
    class Opaque(Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> tuple[int, int]:
            return 0, 0

    with pytest.raises(TypeError, match="cannot fingerprint a Opaque"):
        dataset_fingerprint(Opaque())


def test_indexed_dataset_yields_transformed_image_label_and_position() -> None:
    data = ImageArrays(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4), [5, 6], None)
    indexed = IndexedDataset(data, lambda image: np.asarray(image).sum())
    assert len(indexed) == 2 and dataset_targets(data) == [5, 6]
    assert indexed[1] == (np.arange(16, 32).sum(), 6, 1)
