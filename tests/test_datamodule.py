"""CLIPDataModule: everything about the dataset from its registry entry; which splits test runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision import datasets as tv

from clip_lightning.datamodule import CLIPDataModule, clip_datamodule
from clip_lightning.datasets import DEFAULT_TEMPLATES, dataset_prompts, get_dataset_info
from clip_lightning.errors import ConfigError, DownloadError
from tests.helpers import make_image_folder


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
