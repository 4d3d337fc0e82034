"""Image folders: one class list for every split, labels matched by name, clear layout errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from clip_lightning.datasets import ImageFiles, build_split, dataset_targets, folder_classes
from clip_lightning.errors import ClassFolderError, DatasetNotFoundError
from tests.helpers import make_image_folder


def _split(root: Path, split: str, dataset: str = "imagefolder") -> ImageFiles:
    data = build_split(dataset, str(root), split, False, 0.25, 0)
    assert isinstance(data, ImageFiles)
    return data


def test_aligned_folders_read_exactly_as_torchvision_image_folder(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["b_b", "a", "C", "d"], {"train": 3, "val": 2, "test": 2})
    (tmp_path / "test" / "a" / "nested").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "a" / "nested" / "x.JPG")
    (tmp_path / "test" / "a" / "notes.txt").write_text("not an image")  # no image extension: left out
    for split in ("train", "val", "test"):
        ours, theirs = _split(tmp_path, split), ImageFolder(str(tmp_path / split))
        assert ours.files == [path for path, _ in theirs.samples]
        assert ours.targets == theirs.targets and ours.classes == theirs.classes
        assert ours.split == split


def test_issue_reproduction_a_test_class_that_train_lacks_is_an_error_naming_both_sides(
    tmp_path: Path,
) -> None:
    make_image_folder(tmp_path, ["airplane", "cat", "ship"], {"train": 2})
    make_image_folder(tmp_path, ["airplane", "bird", "cat"], {"test": 2})
    with pytest.raises(ClassFolderError) as raised:
        _split(tmp_path, "test")
    message = str(raised.value)
    assert f"{tmp_path / 'test'} has class folders that {tmp_path / 'train'} lacks: ['bird']" in message
    assert f"{tmp_path / 'train'} has ['ship'] that {tmp_path / 'test'} lacks" in message
    assert "add those folders" in message and "\n" not in message
    train = build_split("imagefolder", str(tmp_path), "train", False, 0.25, 0)  # train itself is fine
    assert folder_classes(train) == ["airplane", "cat", "ship"]


def test_a_split_with_fewer_classes_is_labelled_by_name(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["airplane", "cat", "ship"], {"train": 4, "val": 1, "test": 2})
    shutil.rmtree(tmp_path / "test" / "airplane")
    shutil.rmtree(tmp_path / "val" / "cat")
    test, val = _split(tmp_path, "test"), _split(tmp_path, "val")
    assert test.classes == val.classes == ["airplane", "cat", "ship"]
    assert test.targets == [1, 1, 2, 2] and val.targets == [0, 2]
    assert all(Path(f).parent.name == test.classes[t] for f, t in zip(test.files, test.targets, strict=True))


def test_without_train_the_classes_are_the_union_of_the_splits(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"val": 1})
    make_image_folder(tmp_path, ["b", "c"], {"test": 1})
    test, val = _split(tmp_path, "test"), _split(tmp_path, "val")
    assert test.classes == val.classes == ["a", "b", "c"]
    assert (val.targets, test.targets) == ([0, 1], [1, 2])


def test_imagenet_labels_its_val_folder_with_train_classes(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["n01", "n02", "n03"], {"train": 2})
    make_image_folder(tmp_path, ["n02"], {"val": 2})
    test = _split(tmp_path, "test", "imagenet")
    assert test.classes == ["n01", "n02", "n03"] and test.targets == [1, 1]
    make_image_folder(tmp_path, ["n04"], {"val": 1})
    with pytest.raises(ClassFolderError, match=r"val has class folders that .*train lacks: \['n04'\]"):
        _split(tmp_path, "test", "imagenet")


def test_carved_val_and_the_class_names_follow_the_shared_list(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b", "c"], {"train": 4})
    make_image_folder(tmp_path, ["c"], {"test": 2})
    val = build_split("imagefolder", str(tmp_path), "val", False, 0.25, 0)
    assert sorted(dataset_targets(val)) == [0, 1, 2] and folder_classes(val) == ["a", "b", "c"]
    assert folder_classes(build_split("imagefolder", str(tmp_path), "test", False, 0.25, 0)) == [
        "a",
        "b",
        "c",
    ]


def test_empty_class_folders_and_splits_are_named(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"train": 2, "test": 1})
    (tmp_path / "test" / "b" / "0.png").unlink()
    (tmp_path / "test" / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(
        ClassFolderError, match=r"imagefolder \(test\): class folder .*test/b holds no images"
    ):
        _split(tmp_path, "test")
    shutil.rmtree(tmp_path / "test")
    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"imagefolder: no class folders in .*test\. Expected"):
        _split(tmp_path, "test")


def test_a_gif_in_a_class_folder_is_a_sample(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"test": 1})
    frames = [Image.new("RGB", (5, 5), colour) for colour in ("blue", "red")]
    frames[0].save(tmp_path / "test" / "b" / "anim.gif", save_all=True, append_images=frames[1:])
    test = _split(tmp_path, "test")
    assert [Path(f).name for f in test.files] == ["0.png", "0.png", "anim.gif"] and test.targets == [0, 1, 1]
    image, label = test[2]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (0, 0, 255) and label == 1
