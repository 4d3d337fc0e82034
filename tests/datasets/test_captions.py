"""Image-caption splits: Karpathy's files, CLIP_benchmark's annotations and WebDatasets, one record."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from clip_lightning import CaptionDataModule
from clip_lightning.datasets.captions import (
    CaptionDataError,
    read_caption_split,
    read_clip_benchmark_txt,
    read_karpathy,
)
from clip_lightning.errors import ConfigError, DatasetNotFoundError
from clip_lightning.models import image_transform, tokenize
from tests.datasets.caption_files import (
    random_images,
    write_clip_benchmark,
    write_karpathy,
    write_retrieval_wds,
)

CAPTIONS = [
    ["a red square", "a square, red and bright"],
    ["a dog"],
    ["a cat on a mat", "cat", "a sleeping cat"],
]


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return random_images(tmp_path / "source", 3)


def test_karpathy_split_file(tmp_path: Path, images: list[Path]) -> None:
    root = write_karpathy(tmp_path / "k", images, CAPTIONS)
    data = read_caption_split("flickr30k", str(root), "test")
    assert [Path(p).name for p in data.images] == [p.name for p in images]
    assert Path(data.images[0]).parent == root / "flickr30k-images"
    assert data.captions == [c for texts in CAPTIONS for c in texts]
    assert data.caption_image == [0, 0, 1, 2, 2, 2]
    with pytest.raises(DatasetNotFoundError, match=re.escape("names image 'train_0.png', found in none of")):
        read_caption_split("flickr30k", str(root), "train", format="karpathy")  # only train's images


def test_karpathy_coco_paths_and_other_splits(tmp_path: Path, images: list[Path]) -> None:
    (tmp_path / "val2014").mkdir()
    entries = []
    for i, path in enumerate(images):
        (tmp_path / "val2014" / path.name).write_bytes(path.read_bytes())
        split = "test" if i < 2 else "restval"
        entries.append(
            {"filepath": "val2014", "filename": path.name, "split": split, "sentences": [{"raw": "x"}]}
        )
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    test = read_caption_split("mscoco_captions", str(tmp_path), "test")
    assert test.images == [str(tmp_path / "val2014" / p.name) for p in images[:2]]
    assert len(read_caption_split("mscoco_captions", str(tmp_path), "restval").images) == 1
    with pytest.raises(
        CaptionDataError, match=r"no images of split 'val'; its splits are \['restval', 'test'\]"
    ):
        read_caption_split("mscoco_captions", str(tmp_path), "val")


def test_clip_benchmark_txt_groups_by_first_appearance(tmp_path: Path, images: list[Path]) -> None:
    root = write_clip_benchmark(tmp_path / "cb", images, CAPTIONS)
    data = read_caption_split("flickr30k", str(root), "test")
    assert data.captions == [c for texts in CAPTIONS for c in texts]  # "a square, red and bright" kept whole
    assert data.caption_image == [0, 0, 1, 2, 2, 2]
    file = root / "flickr30k_test_karpathy.txt"
    a, b = images[0].name, images[1].name
    file.write_text(f"image,caption\n{a},one\n{b},two\n\n{a},three\n")  # interleaved, a blank line
    data = read_clip_benchmark_txt(str(file), str(root))
    assert data.captions == ["one", "three", "two"] and data.caption_image == [0, 0, 1]
    file.write_text(f"image,caption\n{a},one\nno image here\n")
    with pytest.raises(CaptionDataError, match=re.escape("line 3: expected 'image.jpg,caption'")):
        read_clip_benchmark_txt(str(file), str(root))


def test_clip_benchmark_coco_json_in_image_id_order(tmp_path: Path, images: list[Path]) -> None:
    (tmp_path / "val2014").mkdir()
    for path in images:
        (tmp_path / "val2014" / path.name).write_bytes(path.read_bytes())
    coco = {
        "images": [{"id": 30, "file_name": images[0].name}, {"id": 7, "file_name": images[1].name}],
        "annotations": [
            {"image_id": 30, "caption": "thirty"},
            {"image_id": 7, "caption": "seven a"},
            {"image_id": 30, "caption": "thirty b"},
            {"image_id": 7, "caption": "seven b"},
        ],
    }
    (tmp_path / "coco_test_karpathy.json").write_text(json.dumps(coco))
    data = read_caption_split("mscoco_captions", str(tmp_path), "test", format="clip_benchmark")
    assert [Path(p).name for p in data.images] == [images[1].name, images[0].name]  # torchvision's id order
    assert data.captions == ["seven a", "seven b", "thirty", "thirty b"]
    assert data.caption_image == [0, 0, 1, 1]


def test_auto_format_prefers_karpathys_file_and_names_both_when_neither(
    tmp_path: Path, images: list[Path]
) -> None:
    root = write_clip_benchmark(tmp_path / "both", images, [["cb"], ["cb"], ["cb"]])
    write_karpathy(root, images, CAPTIONS)
    assert read_caption_split("flickr30k", str(root)).captions[0] == "a red square"
    assert read_caption_split("flickr30k", str(root), format="clip_benchmark").captions[0] == "cb"
    with pytest.raises(DatasetNotFoundError, match=r"dataset_flickr8k\.json.*flickr8k_test_karpathy\.txt"):
        read_caption_split("flickr8k", str(tmp_path / "none"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e[1]["sentences"][0].update(raw="  "), r"1 empty caption: #2 \(image .*img_001.png\)"),
        (lambda e: e[2].update(sentences=[]), r"1 image without any caption: .*img_002.png"),
        (lambda e: e[0].update(filename="gone.png"), r"found in none of"),
        (lambda e: e[2].update(filename="gone.png"), r"names 1 image missing from .*gone.png"),
    ],
    ids=["empty caption", "image without caption", "first image missing", "another image missing"],
)
def test_bad_caption_data_is_one_clear_error(
    tmp_path: Path, images: list[Path], edit: Callable[[list[dict[str, Any]]], None], message: str
) -> None:
    root = write_karpathy(tmp_path / "k", images, CAPTIONS, extra_train=0)
    file = root / "dataset_flickr30k.json"
    content = json.loads(file.read_text())
    edit(content["images"])
    file.write_text(json.dumps(content))
    with pytest.raises((CaptionDataError, DatasetNotFoundError), match=message):
        read_karpathy(str(file), "test", str(root), ("", "flickr30k-images"))


def test_webdataset_gives_the_same_record(tmp_path: Path, images: list[Path]) -> None:
    root = write_retrieval_wds(tmp_path / "wds", images, CAPTIONS, [2, 1])
    dm = CaptionDataModule("wds", root=str(root), num_workers=0, transform=image_transform(32))
    karpathy = read_caption_split("flickr30k", str(write_karpathy(tmp_path / "k", images, CAPTIONS)))
    assert dm.captions == karpathy.captions
    assert dm.caption_image.tolist() == karpathy.caption_image
    assert dm.num_images == 3 and dm.dataset == "wds/wds"
    assert dm.image(2).size == karpathy_image_size(karpathy.images[2])
    (root / "dataset_type.txt").write_text("multilabel\n")
    with pytest.raises(CaptionDataError, match="is a multilabel WebDataset"):
        CaptionDataModule("wds", root=str(root), transform=image_transform(32)).setup("test")


def karpathy_image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_datamodule_serves_images_and_captions_by_index_and_counts_truncation(
    tmp_path: Path, images: list[Path]
) -> None:
    long = "word " * 100
    exact = " ".join(["word"] * 75)  # 75 tokens + start + end: fills the context exactly, not cut
    assert (tokenize(exact)[0] != 0).sum() == 77
    captions = [["a red square", long], ["a dog"], [exact, "cat"]]
    root = write_karpathy(tmp_path / "k", images, captions)
    dm = CaptionDataModule("flickr30k", root=str(root), batch_size=2, caption_batch_size=3, num_workers=0)
    with pytest.raises(ConfigError, match="no transform"):
        dm.setup("test")
    dm = CaptionDataModule("flickr30k", root=str(root), batch_size=2, caption_batch_size=3, num_workers=0,
                           transform=image_transform(32))  # fmt: skip
    dm.setup("test")
    assert dm.truncated == [1]
    assert dm.streams == ("images", "captions") and dm.stream(1) == "captions"
    image_loader, caption_loader = dm.test_dataloader()
    image_batches = list(image_loader)
    assert [b[0].shape for b in image_batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert torch.cat([b[1] for b in image_batches]).tolist() == [0, 1, 2]
    seen = {}
    for tokens, index in caption_loader:
        for row, j in zip(tokens, index.tolist(), strict=True):
            seen[j] = row
    assert sorted(seen) == list(range(5))
    flat = [c for texts in captions for c in texts]
    for j, row in seen.items():
        assert torch.equal(row, tokenize(flat[j], truncate=True)[0])


def test_datamodule_refuses_wrong_options() -> None:
    with pytest.raises(ConfigError, match="unknown caption dataset 'flickr31k'"):
        CaptionDataModule("flickr31k")
    with pytest.raises(ConfigError, match="does not go with dataset 'wds'"):
        CaptionDataModule("wds", format="karpathy")
    with pytest.raises(ConfigError, match="unknown caption format"):
        CaptionDataModule("flickr30k", format="csv")
