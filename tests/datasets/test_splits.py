from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clip_lightning.datasets import build_split, dataset_targets, stratified_split
from clip_lightning.errors import ConfigError, DatasetNotFoundError
from tests.helpers import make_image_folder


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


def test_carved_splits_keep_their_indices() -> None:
    """Pinned: the same seed must give the same samples as every earlier version (cached features)."""
    splits = {s: build_split("digits", "unused", s, False, 0.1, 0) for s in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [1295, 143, 359]
    assert splits["test"].indices[:6] == [5, 9, 12, 14, 16, 17]
    assert splits["val"].indices[:6] == [12, 16, 17, 22, 32, 37]
    assert splits["train"].indices[:6] == [0, 1, 2, 3, 4, 5]


def test_image_folder_without_val_carves_it_from_train(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a_b", "c"], {"train": 10, "test": 3})
    train = build_split("imagefolder", str(tmp_path), "train", False, 0.2, 0)
    val = build_split("imagefolder", str(tmp_path), "val", False, 0.2, 0)
    test = build_split("imagefolder", str(tmp_path), "test", False, 0.2, 0)
    assert (len(train), len(val), len(test)) == (16, 4, 6)
    assert sorted(dataset_targets(val)) == [0, 0, 1, 1]


def test_image_folder_with_val_uses_it_and_imagenet_tests_on_its_val_folder(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"train": 4, "val": 2})
    val = build_split("imagefolder", str(tmp_path), "val", False, 0.2, 0)
    assert len(val) == 4 and len(build_split("imagefolder", str(tmp_path), "train", False, 0.2, 0)) == 8
    test = build_split("imagenet", str(tmp_path), "test", False, 0.2, 0)
    assert dataset_targets(test) == dataset_targets(val) == [0, 0, 1, 1]
    with pytest.raises(DatasetNotFoundError, match=r"imagefolder: no folder .*test; pass --data\.root"):
        build_split("imagefolder", str(tmp_path), "test", False, 0.2, 0)


def test_image_folder_without_train_says_which_folder_is_missing(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"test": 2})
    for split in ("train", "val"):
        with pytest.raises(DatasetNotFoundError, match=r"imagefolder: no folder .*train\. .*--data\.root"):
            build_split("imagefolder", str(tmp_path), split, False, 0.2, 0)


def test_missing_data_is_reported_with_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"--data\.download true"):
        build_split("cifar10", str(tmp_path), "test", False, 0.1, 0)
    with pytest.raises(DatasetNotFoundError, match=r"--data\.root"):
        build_split("imagefolder", str(tmp_path / "nothing"), "test", False, 0.1, 0)
    with pytest.raises(ConfigError, match="unknown dataset"):
        build_split("cifar11", str(tmp_path), "test", False, 0.1, 0)
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        build_split("digits", str(tmp_path), "dev", False, 0.1, 0)
