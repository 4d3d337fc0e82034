"""CLIP_benchmark's WebDataset folders (``--data.dataset wds``): indexing as webdataset groups,
clear errors, what the folder says (names, templates, kind), unreadable images (runs: test_wds_runs)."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset
from PIL import Image

from clip_lightning import CLIPDataModule
from clip_lightning.datasets import IndexedDataset, build_split, dataset_fingerprint, dataset_targets
from clip_lightning.datasets.wds import WdsCaptioned, WdsLabeled, wds_split
from clip_lightning.datasets.wds_index import IMAGE_EXTS, convert_template, index_split
from clip_lightning.errors import ConfigError, DatasetNotFoundError, UnreadableImageError, WebDatasetError
from tests.helpers import make_image_folder, wds_from_image_folder, write_wds

CLASSES = ["cat", "dog", "ship"]
SHARDS = {"train": [10, 8], "test": [4, 7, 1, 3]}  # uneven shards, one of a single sample


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """An image folder (train 18, test 15 images) and the WebDataset folder written from it."""
    folder = make_image_folder(tmp_path / "images", CLASSES, {"train": 6, "test": 5})
    return folder, wds_from_image_folder(folder, tmp_path / "wds", SHARDS)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> None:
    """A tar with these members in order (None: a directory entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_samples_are_webdatasets_own_in_its_order(tmp_path: Path) -> None:
    """Keys with folders and dots, upper-case extensions, two images in one sample, metadata
    members and directories: our samples are webdataset's, image and label bytes included."""
    members: list[tuple[str, bytes | None]] = [
        ("__meta__", b"skipped"),
        ("sub", None),
        ("sub/a.b.png", _png(0)),  # key "sub/a", extension "b.png": no image of ours
        ("sub/a.cls", b"1"),
        ("sub/a.webp", _png(1)),
        ("K1.PNG", _png(2)),
        ("K1.CLS", b"0"),
        ("k2.jpg", _png(3)),
        ("k2.webp", _png(4)),  # webp is preferred, as CLIP_benchmark's to_tuple does
        ("k2.cls", b" 2\n"),
        ("__x__/y.png", b"skipped"),
    ]
    _tar(tmp_path / "test" / "0.tar", members)
    write_wds(tmp_path, "test2", [{"__key__": f"z{i}", "jpeg": _png(9 + i), "cls": i} for i in range(3)], [3])
    (tmp_path / "test2" / "0.tar").rename(tmp_path / "test" / "1.tar")
    (tmp_path / "test" / "nshards.txt").write_text("2")
    index = index_split(str(tmp_path), "test", "classification")
    shards = [str(tmp_path / "test" / f"{n}.tar") for n in range(2)]
    theirs = list(webdataset.WebDataset(shards, shardshuffle=False))
    assert (
        [s.key for s in index.samples]
        == [t["__key__"] for t in theirs]
        == ["sub/a", "K1", "k2", "z0", "z1", "z2"]
    )
    for sample, their in zip(index.samples, theirs, strict=True):
        with open(index.shards[sample.shard], "rb") as f:
            f.seek(sample.image.offset)
            image = f.read(sample.image.size)
        assert image == their[next(e for e in IMAGE_EXTS if e in their)]
        assert sample.label == their["cls"]
    data = wds_split(str(tmp_path), "test")
    assert isinstance(data, WdsLabeled) and data.targets == [1, 0, 2, 0, 1, 2] and data.captions is None
    assert data.sample_names()[2] == f"{shards[0]}/k2"
    assert np.array_equal(np.asarray(data[2][0]), np.asarray(Image.open(io.BytesIO(_png(4))).convert("RGB")))


def _bad(root: Path, case: str) -> str:
    """Break the folder at ``root`` as ``case`` says; returns what the error must name."""
    test = root / "test"
    if case == "missing shards":
        (test / "1.tar").unlink()
        (test / "3.tar").unlink()
        return "['1.tar', '3.tar']"
    if case in ("nshards not a number", "nshards zero"):
        (test / "nshards.txt").write_text("four" if case == "nshards not a number" else "0")
        return str(test / "nshards.txt")
    if case == "compressed shard":
        (test / "2.tar").write_bytes(gzip.compress((test / "2.tar").read_bytes()))
        return f"cannot read shard {test / '2.tar'}"
    appended = {
        "missing label": [("s0000002.png", _png(0))],
        "missing image": [("s0000002.cls", b"1")],
        "label not a number": [("s0000002.png", _png(0)), ("s0000002.cls", b"dog")],
        "label out of range": [("s0000002.png", _png(0)), ("s0000002.cls", b"3")],
    }[case]
    write_wds(root, "spare", [{"__key__": "s0000001", "png": _png(1), "cls": 0}], [1])
    with tarfile.open(root / "spare" / "0.tar", "a") as tar:  # then the broken sample
        for member, data in appended:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "spare" / "0.tar").replace(test / "1.tar")
    return f"{test / '1.tar'}" if case.startswith("missing") else f"{test / '1.tar'}/s0000002"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing shards", "says 4 shards but 2 of them are missing"),
        ("nshards not a number", "not a number of shards"),
        ("nshards zero", "not a number of shards"),
        ("compressed shard", "as an uncompressed tar"),
        ("missing label", "sample 's0000002' of"),
        ("missing image", "has no image (.webp, .png, .jpg or .jpeg)"),
        ("label not a number", "not a class index"),
        ("label out of range", "is 3, outside the 3 classes of classnames.txt"),
    ],
)
def test_broken_folders_are_one_clear_error(folders: tuple[Path, Path], case: str, message: str) -> None:
    root = folders[1]
    names = _bad(root, case)
    with pytest.raises(WebDatasetError) as raised:
        build_split("wds", str(root), "test", False, 0.1, 0)
    assert message in str(raised.value) and names in str(raised.value)
    if case == "missing label":
        assert "has no .cls label (it has ['.png'])" in str(raised.value)


def test_a_missing_split_names_its_nshards_file(folders: tuple[Path, Path]) -> None:
    root = folders[1]
    (root / "train" / "nshards.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"no .*train/nshards.txt.* \(it has \['test'\]\)"):
        build_split("wds", str(root), "val", False, 0.1, 0)


def test_templates_are_converted_to_the_same_prompts() -> None:
    for template in ["a photo of a {c}.", "{{literal}} {c} and }}", "{c!r} is {{}}", "{c:>6}|"]:
        ours = convert_template(template)
        assert ours.format("dog") == template.format(c="dog")
    assert convert_template("{c} and {c}") == "{} and {}"
    with pytest.raises(ConfigError, match=r"uses \{d\}; the class name placeholder is \{c\}"):
        convert_template("a {d}")
    with pytest.raises(ConfigError, match="not a valid format string"):
        convert_template("a {c")


def test_datamodule_reads_names_templates_and_kind_from_the_folder(folders: tuple[Path, Path]) -> None:
    root = folders[1]
    (root / "zeroshot_classification_templates.txt").write_text("a {c}.\n\n  {{x}} of {c}  \n")
    dm = CLIPDataModule("wds", root=str(root), num_workers=0)
    assert dm.classnames == CLASSES and dm.templates == ["a {}.", "{{x}} of {}"]
    assert not dm.multilabel and not dm.info.multilabel and dm.main_metric == "acc1"
    (root / "classnames.txt").unlink()
    with pytest.raises(ConfigError, match="names no classes"):
        _ = CLIPDataModule("wds", root=str(root), num_workers=0).classnames
    assert CLIPDataModule("wds", root=str(root), classnames=["x", "y", "z"], num_workers=0).classnames == [
        "x",
        "y",
        "z",
    ]


def test_multilabel_and_retrieval_folders(tmp_path: Path) -> None:
    hot = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=np.int64)
    samples = [{"__key__": f"m{i}", "jpg": _png(i), "npy": hot[i]} for i in range(3)]
    write_wds(tmp_path / "ml", "test", samples, [2, 1])
    (tmp_path / "ml" / "classnames.txt").write_text("a\nb\nc\n")
    (tmp_path / "ml" / "dataset_type.txt").write_text("multilabel\n")
    data = wds_split(str(tmp_path / "ml"), "test")
    assert isinstance(data, WdsLabeled) and data.multi_hot is not None
    assert np.array_equal(data.multi_hot, hot)
    label = data[1][1]  # as MultiLabelImageFiles gives it: a float32 multi-hot tensor
    assert isinstance(label, torch.Tensor) and label.dtype == torch.float32 and label.tolist() == [0, 1, 0]
    dm = CLIPDataModule("wds", root=str(tmp_path / "ml"), num_workers=0)
    assert dm.multilabel and dm.info.multilabel and dm.main_metric == "mean_average_precision"
    assert len(dm.split("test")) == 3
    with pytest.raises(ConfigError, match=r"multi-label dataset .* cannot be split by class"):
        dataset_targets(data)
    write_wds(tmp_path / "ml", "train", samples, [3])
    with pytest.raises(ConfigError, match=r"multi-label dataset .* cannot be split by class"):
        build_split("wds", str(tmp_path / "ml"), "val", False, 0.1, 0)  # val is carved by class
    (tmp_path / "ml" / "classnames.txt").write_text("a\nb\n")
    with pytest.raises(
        WebDatasetError, match=r"\.npy label of .*/test/0\.tar/m0 has shape \(3,\), not \(2,\)"
    ):
        wds_split(str(tmp_path / "ml"), "test")
    (tmp_path / "ml" / "classnames.txt").write_text("a\nb\nc\n")
    write_wds(tmp_path / "ml", "test", [{**samples[0], "npy": np.array([1, -1, 0])}], [1])
    with pytest.raises(WebDatasetError, match="holds values other than 0 and 1"):
        wds_split(str(tmp_path / "ml"), "test")

    captions = ["a cat\nthe cat", "a dog", "two ships\n\nno, three"]
    samples = [{"__key__": f"r{i}", "webp": _png(i), "txt": captions[i]} for i in range(3)]
    write_wds(tmp_path / "ret", "test", samples, [1, 2])
    (tmp_path / "ret" / "dataset_type.txt").write_text("retrieval")
    ret = wds_split(str(tmp_path / "ret"), "test")
    assert isinstance(ret, WdsCaptioned) and len(ret) == 3
    assert ret.captions == [c.splitlines() for c in captions]
    assert isinstance(ret[2], Image.Image) and ret[2].mode == "RGB"
    assert ret.without({ret.sample_names()[0]}).captions == ret.captions[1:]
    with pytest.raises(ConfigError, match="holds a retrieval set"):
        build_split("wds", str(tmp_path / "ret"), "test", False, 0.1, 0)


def test_bad_images_are_named_by_shard_and_key_verified_or_skipped(folders: tuple[Path, Path]) -> None:
    root = folders[1]
    samples = [
        {"__key__": "s0000011", "png": _png(0)[:40], "cls": 2},
        {"__key__": "s0000012", "png": _png(1), "cls": 2},
    ]
    write_wds(root, "spare", samples, [2])
    (root / "spare" / "0.tar").replace(root / "test" / "2.tar")  # shard 2 held s0000011 alone
    (root / "test" / "nshards.txt").write_text("4")
    bad = f"{root / 'test' / '2.tar'}/s0000011"
    data = build_split("wds", str(root), "test", False, 0.1, 0)  # a truncated PNG's header reads
    with pytest.raises(UnreadableImageError, match=re.escape(f"cannot read image {bad} of the test split")):
        data[11]
    with pytest.raises(UnreadableImageError, match=re.escape(f"{bad} (")):
        CLIPDataModule("wds", root=str(root), verify=True, num_workers=0).split("test")
    dm = CLIPDataModule("wds", root=str(root), skip_bad_images=True, num_workers=0)
    kept = dm.split("test")
    assert len(kept) == 15 and dm.skipped_images == [("test", bad)]
    assert dataset_fingerprint(kept) != dataset_fingerprint(data)


def test_worker_processes_read_what_one_process_reads(folders: tuple[Path, Path]) -> None:
    data = wds_split(str(folders[1]), "test")
    for i in (
        0,
        4,
        11,
        12,
    ):  # the parent holds every shard open: forked workers must not share its file positions
        data[i]
    dataset = IndexedDataset(data, lambda image: torch.from_numpy(np.asarray(image.resize((8, 8))).copy()))
    batches = [
        list(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers)) for workers in (0, 2)
    ]
    for one, two in zip(*batches, strict=True):
        for a, b in zip(one, two, strict=True):
            assert torch.equal(a, b)
