"""The registry: one entry per dataset, and docs/datasets.md generated from it."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from clip_lightning.datasets import (
    DATASETS,
    SPLITS,
    DatasetInfo,
    ImageArrays,
    LabeledImages,
    build_split,
    dataset_targets,
    get_dataset_info,
    known_prompt_datasets,
    register,
    unregister,
)
from clip_lightning.datasets.docs import GENERATE_COMMAND, datasets_markdown
from clip_lightning.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def test_every_entry_is_complete() -> None:
    assert list(DATASETS) == [
        "cifar10", "cifar100", "mnist", "stl10", "food101", "flowers102", "dtd", "oxford_pets",
        "imagenet", "eurosat", "digits", "imagefolder", "fgvc_aircraft", "caltech101", "sun397",
        "stanford_cars", "fer2013", "gtsrb", "country211", "pcam", "rendered_sst2", "clevr_count", "svhn",
        "voc2007", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r", "objectnet", "wds",
    ]  # fmt: skip
    for name, info in DATASETS.items():
        assert info.name == name and get_dataset_info(name) is info
        assert set(info.splits) <= set(SPLITS) and info.description and info.source
        assert info.prompts is None or info.prompts in known_prompt_datasets()
        # The CLIP paper's metric (Table 9): mean per-class recall for Aircraft, Pets, Caltech-101 and
        # Flowers, 11-point mAP for VOC 2007, else accuracy.
        recall = ("flowers102", "oxford_pets", "fgvc_aircraft", "caltech101")
        paper = "mean_per_class_recall" if name in recall else "acc1"
        assert info.main_metric == ("mean_average_precision" if name == "voc2007" else paper)
    assert get_dataset_info("digits").prompts == "mnist"
    assert get_dataset_info("imagefolder").prompts is None
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar11'; choose one of \['cifar10', "):
        get_dataset_info("cifar11")


def test_adding_a_dataset_is_one_entry() -> None:
    def load(root: str, split: str, download: bool) -> LabeledImages:
        return ImageArrays(np.zeros((10, 2, 2), np.uint8), [i % 2 for i in range(10)], ["even", "odd"])

    info = register(DatasetInfo("toy", load, (), "ten blank images", "tests", None, "mean_per_class_recall"))
    try:
        assert "toy" in DATASETS and get_dataset_info("toy").main_metric == "mean_per_class_recall"
        splits = {s: build_split("toy", "unused", s, False, 0.25, 0) for s in SPLITS}
        assert {s: sorted(dataset_targets(d)) for s, d in splits.items()} == {
            "train": [0, 0, 0, 1, 1, 1],
            "val": [0, 1],
            "test": [0, 1],
        }
        with pytest.raises(ValueError, match="already registered"):
            register(info)
    finally:
        assert unregister("toy") is info
    assert "toy" not in DATASETS
    with pytest.raises(ValueError, match="unknown splits"):
        DatasetInfo("bad", load, ("dev",), "", "", None)


def test_docs_table_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_module("clip_lightning.datasets", run_name="__main__")
    printed = capsys.readouterr().out
    assert printed == datasets_markdown()
    assert GENERATE_COMMAND in printed
    assert DOC.read_text(encoding="utf-8") == printed, f"docs/datasets.md is stale; run: {GENERATE_COMMAND}"
    for name in DATASETS:
        assert f"| `{name}` |" in printed
