"""One image-caption set written in each input format retrieval reads (test helper).

The same images and captions, in the same order, as Karpathy's split file, CLIP_benchmark's
annotation file and CLIP_benchmark's retrieval WebDataset, so every format must give the same
indices and the same metrics.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import write_wds

CLASSES_CAPTIONS = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution picture of the {}, seen up close",
    "{}",
)


def random_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` random PNG images of different sizes (some grey) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = rng.integers(10, 40, size=2)
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        path = folder / f"img_{i:03d}.png"
        (image.convert("L") if i % 4 == 3 else image).save(path)
        paths.append(path)
    return paths


def class_captions(label: str, count: int, seed: int) -> list[str]:
    """``count`` captions naming ``label``, with different wordings (the real set's several captions)."""
    rng = np.random.default_rng(seed)
    templates = rng.permutation(len(CLASSES_CAPTIONS))[:count]
    return [CLASSES_CAPTIONS[t].format(label.replace("_", " ")) for t in templates]


def write_karpathy(root: Path, images: list[Path], captions: list[list[str]], extra_train: int = 2) -> Path:
    """``root/dataset_flickr30k.json`` (split ``test``, plus ``extra_train`` images of split ``train``)
    with the images copied to ``root/flickr30k-images``."""
    folder = root / "flickr30k-images"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for path, texts in zip(images, captions, strict=True):
        shutil.copy(path, folder / path.name)
        entries.append({"filename": path.name, "split": "test", "sentences": [{"raw": t} for t in texts]})
    for i in range(extra_train):  # other splits' images must be left out (their files need not exist)
        entries.insert(1 + i, {"filename": f"train_{i}.png", "split": "train", "sentences": [{"raw": "x"}]})
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    return root


def write_clip_benchmark(root: Path, images: list[Path], captions: list[list[str]]) -> Path:
    """``root/flickr30k_test_karpathy.txt`` (a header, then ``image,caption`` lines), images in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["image,caption"]
    for path, texts in zip(images, captions, strict=True):
        shutil.copy(path, root / path.name)
        lines += [f"{path.name},{text}" for text in texts]
    (root / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    return root


def write_retrieval_wds(root: Path, images: list[Path], captions: list[list[str]], shards: list[int]) -> Path:
    """CLIP_benchmark's retrieval WebDataset: ``test/{0..}.tar`` of ``.png`` + ``.txt`` (a caption per line)."""
    samples: list[dict[str, object]] = [
        {"__key__": f"s{i:05d}", "png": path.read_bytes(), "txt": "\n".join(texts)}
        for i, (path, texts) in enumerate(zip(images, captions, strict=True))
    ]
    write_wds(root, "test", samples, shards)
    (root / "dataset_type.txt").write_text("retrieval\n")
    return root
