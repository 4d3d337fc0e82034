"""CLIPDataModule: everything about the dataset from its registry entry; which splits test runs."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision import datasets as tv

from clip_lightning.datamodule import CLIPDataModule, clip_datamodule
from clip_lightning.datasets import DEFAULT_TEMPLATES, dataset_prompts, get_dataset_info
from clip_lightning.errors import ConfigError, DownloadError, UnreadableImageError
from tests.helpers import make_image_folder, write_bad_image


def _to_tensor(image: object) -> torch.Tensor:
    return torch.zeros(1)


def test_a_named_dataset_reads_its_registry_entry() -> None:
    dm = CLIPDataModule("digits", num_workers=0)
    assert dm.info is get_dataset_info("digits") and dm.main_metric == "acc1"
    names, templates = dataset_prompts("mnist")  # digits borrows MNIST's prompts
    assert dm.classnames == names and dm.templates == templates and dm.num_classes == 10


def test_image_folder_names_come_from_the_folders_and_are_counted(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["golden_retriever", "cat"], {"test": 1})
    dm = CLIPDataModule("imagefolder", root=str(tmp_path), num_workers=0)
    assert dm.classnames == ["cat", "golden retriever"] and dm.templates == DEFAULT_TEMPLATES
    given = CLIPDataModule("imagefolder", root=str(tmp_path), classnames=["a", "b"], templates=["x {}"])
    assert given.classnames == ["a", "b"] and given.templates == ["x {}"]
    wrong = CLIPDataModule("imagefolder", root=str(tmp_path), classnames=["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"3 class names for 2 classes in .*one name per class folder"):
        _ = wrong.classnames


def test_constructor_errors_name_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'cifar11'; choose one of"):
        CLIPDataModule("cifar11")
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        CLIPDataModule("digits", batch_size=0)
    with pytest.raises(ConfigError, match=r"unknown split 'dev' in test_splits; choose from \['train'"):
        CLIPDataModule("digits", test_splits=["test", "dev"])


def test_set_test_splits_chooses_what_test_iterates_in_order() -> None:
    dm = CLIPDataModule("digits", batch_size=500, num_workers=0, transform=_to_tensor)
    assert dm.test_splits == ["test"] and CLIPDataModule("digits", test_splits=[]).test_splits == ["test"]
    dm.set_test_splits(["train", "val", "test"])
    dm.test_splits.append("val")  # a copy: only set_test_splits changes it
    assert dm.test_splits == ["train", "val", "test"]
    with pytest.raises(AttributeError):
        dm.test_splits = ["test"]  # type: ignore[misc]
    for bad, message in (
        ([], "test_splits is empty"),
        (["val", "dev"], "unknown split 'dev' in test_splits"),
    ):
        with pytest.raises(ConfigError, match=message):
            dm.set_test_splits(bad)
    assert dm.test_splits == ["train", "val", "test"]  # unchanged by a refused call
    dm.setup("test")
    loaders = dm.test_dataloader()
    assert isinstance(loaders, list) and [len(loader.dataset) for loader in loaders] == [1295, 143, 359]
    images, _, index = next(iter(loaders[2]))
    assert images.shape == (359, 1) and index.tolist() == list(range(359))
    dm.set_test_splits(["val"])
    assert not isinstance(dm.test_dataloader(), list)


def test_setup_needs_a_transform_and_clip_datamodule_a_clip_datamodule() -> None:
    with pytest.raises(ConfigError, match="CLIPDataModule has no transform"):
        CLIPDataModule("digits", num_workers=0).setup("test")
    with pytest.raises(ConfigError, match=r"needs a CLIPDataModule .* got NoneType"):
        clip_datamodule(SimpleNamespace(datamodule=None))  # type: ignore[arg-type]
    dm = CLIPDataModule("digits")
    assert clip_datamodule(SimpleNamespace(datamodule=dm)) is dm  # type: ignore[arg-type]


def test_prepare_data_raises_a_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tv.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    dm = CLIPDataModule("cifar10", root=str(tmp_path), download=True, transform=_to_tensor)
    with pytest.raises(DownloadError, match=r"cifar10 \(train\) could not be downloaded"):
        dm.prepare_data()
    CLIPDataModule("cifar10", root=str(tmp_path), download=False).prepare_data()  # nothing to do


def _bad_folder(root: Path) -> dict[str, str]:
    """An image folder with one bad file of each kind; returns kind -> path."""
    make_image_folder(root, ["a", "b"], {"train": 4, "test": 3})
    return {
        "text": str(write_bad_image(root / "train" / "a" / "x.png", "text")),
        "truncated": str(write_bad_image(root / "test" / "a" / "t.png", "truncated")),
        "empty": str(write_bad_image(root / "test" / "b" / "e.jpg", "empty")),
    }


def test_names_come_from_train_when_test_has_fewer_classes(tmp_path: Path) -> None:
    make_image_folder(tmp_path, ["airplane", "cat", "ship"], {"train": 2})
    make_image_folder(tmp_path, ["cat"], {"test": 2})
    dm = CLIPDataModule("imagefolder", root=str(tmp_path), num_workers=0, transform=_to_tensor)
    dm.setup("test")
    assert dm.classnames == ["airplane", "cat", "ship"] and dm.num_classes == 3
    assert dm.split("test").targets == [1, 1]  # type: ignore[attr-defined]


def test_unreadable_images_stop_setup_naming_the_file_and_split(tmp_path: Path) -> None:
    bad = _bad_folder(tmp_path)
    dm = CLIPDataModule("imagefolder", root=str(tmp_path), num_workers=0, transform=_to_tensor)
    with pytest.raises(UnreadableImageError) as raised:  # headers only: the truncated file passes here
        dm.setup("test")
    assert str(raised.value) == (
        f"imagefolder (test): cannot read image {bad['empty']} (an empty file (0 bytes)); replace or "
        "delete it, or pass --data.skip_bad_images true to skip unreadable images"
    )
    dm.set_test_splits(["train", "val", "test"])  # as a probe does: train's text file counts too
    first = re.escape(f"imagefolder: 2 unreadable images, the first {bad['empty']} in test (an empty")
    with pytest.raises(UnreadableImageError, match=first + ".*--data.verify true lists them all"):
        dm.test_dataloader()


def test_verify_lists_every_unreadable_image(tmp_path: Path) -> None:
    bad = _bad_folder(tmp_path)
    dm = CLIPDataModule(
        "imagefolder", root=str(tmp_path), num_workers=2, transform=_to_tensor, verify=True,
        test_splits=["train", "val", "test"],
    )  # fmt: skip
    with pytest.raises(UnreadableImageError) as raised:
        dm.setup("test")
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "imagefolder: 3 unreadable images; replace or delete them, or pass --data.skip_bad_images true "
        "to skip them:"
    )
    assert lines[1:] == [
        f"  train: {bad['text']} (not an image file Pillow recognises)",
        f"  test: {bad['truncated']} (OSError: image file is truncated)",
        f"  test: {bad['empty']} (an empty file (0 bytes))",
    ]
    good = tmp_path / "good"
    make_image_folder(good, ["a", "b"], {"train": 2, "test": 2})
    CLIPDataModule("imagefolder", root=str(good), num_workers=0, transform=_to_tensor, verify=True).setup()


def test_skip_bad_images_leaves_them_out_the_same_every_time(tmp_path: Path) -> None:
    bad = _bad_folder(tmp_path)

    def run() -> CLIPDataModule:
        dm = CLIPDataModule(
            "imagefolder", root=str(tmp_path), batch_size=50, num_workers=0, transform=_to_tensor,
            skip_bad_images=True, test_splits=["train", "val", "test"],
        )  # fmt: skip
        with pytest.warns(UserWarning, match=r"imagefolder: skipped 3 unreadable images .*3 skipped in all"):
            dm.setup("test")
        return dm

    dm = run()
    expected = [("train", bad["text"]), ("test", bad["truncated"]), ("test", bad["empty"])]
    assert dm.skipped_images == expected and run().skipped_images == expected
    loaders = dm.test_dataloader()
    assert isinstance(loaders, list) and [len(loader.dataset) for loader in loaders] == [6, 2, 6]  # type: ignore[arg-type]
    for loader in loaders:  # every remaining image decodes
        assert len(next(iter(loader))[0]) == len(loader.dataset)  # type: ignore[arg-type]
    plain = CLIPDataModule("imagefolder", root=str(tmp_path / "nothing"), skip_bad_images=True)
    assert plain.skipped_images == []
