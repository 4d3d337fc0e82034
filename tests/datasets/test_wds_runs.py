"""A CLIP_benchmark WebDataset folder gives the same predictions, zero-shot and linear-probe results
as the image folder it was written from, in one process and in two."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import tests.test_cli as cli_tests
from clip_lightning import CLIPDataModule, CLIPEvaluator, LinearProbe
from tests.helpers import TINY_VIT, make_image_folder, random_state_dict, wds_from_image_folder

workdir = cli_tests.workdir  # the test's folder with tiny.pt, the configs' checkpoint (cli: conftest's)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """An image folder (train 18, test 15 images) and the WebDataset folder written from it, in
    uneven shards (test: 4, 7, 1 and 3 samples)."""
    folder = make_image_folder(tmp_path / "images", ["cat", "dog", "ship"], {"train": 6, "test": 5})
    return folder, wds_from_image_folder(folder, tmp_path / "wds", {"train": [10, 8], "test": [4, 7, 1, 3]})


def _trainer(**kwargs: object) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, **kwargs)


def test_predictions_equal_the_image_folders(folders: tuple[Path, Path], tmp_path: Path) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=4), tmp_path / "tiny.pt")
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
    out = {}
    for dataset, root in zip(("imagefolder", "wds"), folders, strict=True):
        dm = CLIPDataModule(
            dataset, root=str(root), batch_size=4, num_workers=0, transform=evaluator.preprocess
        )
        batches = _trainer().predict(evaluator, dm)
        assert batches is not None
        out[dataset] = {
            k: torch.cat([b[k] for b in batches]) for k in ("index", "label", "features", "logits")
        }
    assert torch.equal(out["wds"]["index"], torch.arange(15))
    for key, value in out["wds"].items():
        assert torch.equal(value, out["imagefolder"][key]), key


def test_linear_probe_on_train_and_test_shards_equals_the_image_folders(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=4), tmp_path / "tiny.pt")
    metrics = {}
    for dataset, root in zip(("imagefolder", "wds"), folders, strict=True):
        evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
        dm = CLIPDataModule(
            dataset, root=str(root), batch_size=8, num_workers=0, transform=evaluator.preprocess
        )
        trainer = _trainer(callbacks=[LinearProbe(C=1.0, max_iter=100)])
        metrics[dataset] = trainer.test(evaluator, dm, verbose=False)[0]
        assert sorted(dm.test_splits) == ["test", "train"]  # train: the train shards less a carved val
    assert {"test/lp_acc1", "test/acc1"} <= set(metrics["wds"])
    assert metrics["wds"] == metrics["imagefolder"]


@pytest.mark.ddp
def test_two_processes_predict_what_the_image_folder_gives_in_one(
    folders: tuple[Path, Path], workdir: Path, cli: cli_tests.Cli
) -> None:
    """15 test images in shards of 4, 7, 1 and 3, batches of 4 over 2 processes: the sampler pads
    one process with a repeat, and the file must hold every image once, as the image folder's."""
    image_folder, wds_folder = folders
    code, _, err = cli(
        "predict", *cli_tests.conf(dataset="imagefolder", root=str(image_folder), batch_size=4)
    )
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    config = cli_tests.conf(dataset="wds", root=str(wds_folder), batch_size=4)
    proc = cli_tests.run_cli("predict", *config, *ddp, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("predictions: 15 images") == 1
    one, two = cli_tests.predictions(workdir, 0), cli_tests.predictions(workdir, 1)
    assert set(one) == set(two) == {"index", "label", "features", "logits", "classnames"}
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
