"""Property: any class-folder layout across splits either fails with a clear error or gives the
labels, zero-shot and probe numbers of the same images labelled by class name (the aligned data)."""

from __future__ import annotations

import random
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from clip_lightning import CLIPDataModule, CLIPEvaluator, LinearProbe
from clip_lightning.datasets import SPLITS, DatasetInfo, ImageFiles, build_split, register, unregister
from clip_lightning.errors import ClassFolderError
from tests.helpers import TINY_VIT, random_state_dict

# Case and underscores matter: they decide where a class sorts, so layouts shuffle positions.
POOL = ["Zebra", "ant", "bee_x", "cat", "dog", "eel"]
PER_SPLIT = {"train": 4, "val": 2, "test": 2}

Layout = dict[str, list[str]]  # split -> its class folders


def random_layout(rng: random.Random, train_required: bool = False) -> Layout:
    """Train: 2+ classes (or, unless required, sometimes no train folder); val (sometimes) and test:
    some of train's classes, in their own sort order, sometimes with a class train lacks."""
    layout: Layout = {}
    if train_required or rng.random() < 0.8:
        layout["train"] = rng.sample(POOL, rng.randint(2, len(POOL)))
    for split in ("val", "test"):
        if split == "test" or rng.random() < 0.5:
            base = layout.get("train", POOL)
            names = rng.sample(base, rng.randint(1, len(base)))
            others = [name for name in POOL if name not in names]
            if others and rng.random() < 0.3:
                names.append(rng.choice(others))
            layout[split] = names
    return layout


def _pixels(split: str, name: str, i: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{split}/{name}/{i}".encode()))
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixels[..., POOL.index(name) % 3] = 40 * POOL.index(name)  # class-dependent, so probes can learn
    return pixels


def _write(root: Path, layout: Layout) -> None:
    for split, names in layout.items():
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(PER_SPLIT[split]):
                Image.fromarray(_pixels(split, name, i)).save(root / split / name / f"{i}.png")


def _expected(root: Path, layout: Layout, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The shared class list and (file, label by name) of ``split``, computed from the layout alone."""
    classes = sorted(layout["train"] if "train" in layout else set().union(*layout.values()))
    files = sorted(
        root / split / name / f"{i}.png" for name in layout[split] for i in range(PER_SPLIT[split])
    )
    return classes, [(str(f), classes.index(f.parent.name)) for f in files]


def _misaligned(layout: Layout) -> dict[str, list[str]]:
    """split -> its classes that train lacks, for the splits that have some."""
    extras = {s: sorted(set(names) - set(layout.get("train", names))) for s, names in layout.items()}
    return {s: extra for s, extra in extras.items() if extra}


def test_every_layout_is_labelled_by_name_or_refused() -> None:
    outcomes = set()
    for seed in range(60):
        outcomes |= _check_labels(random_layout(random.Random(seed)))
    assert outcomes == {"labelled", "refused"}  # both kinds of layout were drawn


def _check_labels(layout: Layout) -> set[str]:
    outcomes = set()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, layout)
        for split in layout:
            extra = _misaligned(layout).get(split)
            if extra:
                with pytest.raises(ClassFolderError, match=f"lacks: {extra}".replace("[", r"\[")):
                    build_split("imagefolder", str(root), split, False, 0.25, 0)
                outcomes.add("refused")
                continue
            data = build_split("imagefolder", str(root), split, False, 0.25, 0)
            if split == "train" and "val" not in layout:
                data = data.dataset  # type: ignore[attr-defined]  # the official split under the carving
            assert isinstance(data, ImageFiles)
            classes, samples = _expected(root, layout, split)
            assert data.classes == classes
            assert sorted(zip(data.files, data.targets, strict=True)) == samples
            outcomes.add("labelled")
    return outcomes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    torch.save(random_state_dict(TINY_VIT, seed=3), path)
    return str(path)


@contextmanager
def _aligned_dataset(root: Path, layout: Layout) -> Iterator[str]:
    """The same images as a registered dataset whose labels are given by class name, not by folders."""

    def load(_: str, split: str, download: bool) -> ImageFiles:
        classes, samples = _expected(root, layout, split)
        return ImageFiles([f for f, _ in samples], [t for _, t in samples], classes)

    splits = tuple(s for s in SPLITS if s in layout)
    register(DatasetInfo("aligned_reference", load, splits, "the layout, labelled by name", "tests", None))
    try:
        yield "aligned_reference"
    finally:
        unregister("aligned_reference")


def _numbers(model: str, dataset: str, root: Path) -> list:
    evaluator = CLIPEvaluator(name=model)
    data = CLIPDataModule(
        dataset,
        root=str(root),
        batch_size=16,
        num_workers=0,
        val_fraction=0.25,
        transform=evaluator.preprocess,
    )
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[LinearProbe(C=1.0, max_iter=50)],
    )  # fmt: skip
    return trainer.test(evaluator, data, verbose=False)


def _check_numbers(model: str, layout: Layout) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, layout)
        try:
            ours = _numbers(model, "imagefolder", root)
        except ClassFolderError as err:  # only where a split the run reads has a class train lacks
            assert any(f"lacks: {extra}" in str(err) for extra in _misaligned(layout).values())
            return
        # Every split the run read was aligned or labelled by name: the reference reads the same ones.
        with _aligned_dataset(root, layout) as reference:
            expected = _numbers(model, reference, root)
        # Exactly equal; NaN equals NaN (a 2-class split holding one class has no ROC AUC).
        np.testing.assert_equal(ours, expected)
        assert "test/lp_acc1" in ours[-1] and "test/acc1" in ours[-1]


LAYOUTS = [
    {"train": ["eel", "ant", "Zebra"], "test": ["eel", "ant"], "val": ["Zebra", "ant"]},  # fewer classes
    {"train": ["ant", "cat", "eel"], "test": ["ant", "cat", "dog"]},  # the issue's: an error
]


@pytest.mark.parametrize("layout", [*LAYOUTS, random_layout(random.Random(0), True)])
def test_zero_shot_and_probe_numbers_equal_the_aligned_data(tiny: str, layout: Layout) -> None:
    _check_numbers(tiny, layout)


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed", range(1, 9)
)  # 8 more layouts: about a minute; the 60-layout label check is fast
def test_zero_shot_and_probe_numbers_equal_the_aligned_data_many_layouts(tiny: str, seed: int) -> None:
    _check_numbers(tiny, random_layout(random.Random(seed), train_required=True))
