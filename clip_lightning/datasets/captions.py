"""Image-caption splits for retrieval, from Karpathy's split files or CLIP_benchmark's annotations.

Every reader returns one :class:`CaptionSet`: the images (paths), the captions, and the image each
caption describes. Images keep the order of their first appearance and captions are grouped by image
in that order (CLIP_benchmark's order), so the same data in either format gives the same indices.

Formats (``root`` is the dataset's folder):

* Karpathy's ``dataset_flickr30k.json``, ``dataset_flickr8k.json``, ``dataset_coco.json``:
  ``images[]`` with ``filename``, ``filepath`` (COCO's ``train2014``/``val2014``), ``split``
  (``train``, ``val``, ``test``, ``restval``; matched exactly) and ``sentences[].raw``;
* CLIP_benchmark's ``flickr30k_{split}_karpathy.txt`` / ``flickr8k_{split}_karpathy.txt`` (a header
  line, then ``image.jpg,caption``; the caption is everything after the first ``.jpg,``, as there)
  and ``coco_{split}_karpathy.json`` (COCO's captions format, images in ``val2014``/``train2014``,
  in image-id order as torchvision's ``CocoCaptions`` reads them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetNotFoundError, UserError

__all__ = [
    "CAPTION_DATASETS",
    "CaptionDataError",
    "CaptionSet",
    "caption_files",
    "read_caption_split",
    "read_clip_benchmark_coco",
    "read_clip_benchmark_txt",
    "read_karpathy",
]

# Dataset name -> (Karpathy's file, CLIP_benchmark's annotation prefix, image folders to look in).
CAPTION_DATASETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "flickr30k": ("dataset_flickr30k.json", "flickr30k", ("", "flickr30k-images", "flickr30k_images", "Images", "images")),
    "flickr8k": ("dataset_flickr8k.json", "flickr8k", ("", "Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")),
    "mscoco_captions": ("dataset_coco.json", "coco", ("", "images")),
}  # fmt: skip


class CaptionDataError(UserError, ValueError):
    """Captions that cannot be scored: an empty caption, an image without one, a missing image."""


@dataclass(frozen=True)
class CaptionSet:
    """One image-caption split: ``captions[j]`` describes image ``caption_image[j]``.

    ``images`` are file paths (or sample names, for WebDatasets); ``source`` is the annotation file.
    """

    images: list[str]
    captions: list[str]
    caption_image: list[int]
    source: str

    def __post_init__(self) -> None:
        check_captions(self.images, self.captions, self.caption_image, self.source)


def _examples(items: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def check_captions(
    images: Sequence[str], captions: Sequence[str], caption_image: Sequence[int], source: str
) -> None:
    """Raise CaptionDataError for empty captions and images without captions (all of them, named)."""
    if not images:
        raise CaptionDataError(f"{source}: no images in this split; check the split name and the file")
    empty = [
        f"#{j} (image {images[caption_image[j]]})" for j, text in enumerate(captions) if not text.strip()
    ]
    if empty:
        raise CaptionDataError(
            f"{source}: {len(empty)} empty caption{'s' if len(empty) > 1 else ''}: {_examples(empty)}; "
            "remove them or write their text"
        )
    described = set(caption_image)
    lonely = [name for i, name in enumerate(images) if i not in described]
    if lonely:
        raise CaptionDataError(
            f"{source}: {len(lonely)} image{'s' if len(lonely) > 1 else ''} without any caption: "
            f"{_examples(lonely)}; every image needs at least one (remove the image or add captions)"
        )


def _group(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str], list[int]]:
    """(image, caption) pairs -> images in first-appearance order, captions grouped by image."""
    per_image: dict[str, list[str]] = {}
    for image, caption in pairs:
        per_image.setdefault(image, []).append(caption)
    images, captions, owner = list(per_image), [], []
    for i, image in enumerate(images):
        captions += per_image[image]
        owner += [i] * len(per_image[image])
    return images, captions, owner


def _locate(names: Sequence[str], root: str, folders: Sequence[str], source: str) -> list[str]:
    """Paths of ``names`` in the first of ``root/folders`` holding the first one; every one must exist."""
    tried = [os.path.join(root, folder) for folder in folders]
    base = next((d for d in tried if names and os.path.isfile(os.path.join(d, names[0]))), None)
    if base is None:
        raise DatasetNotFoundError(
            f"{source} names image {names[0]!r}, found in none of {tried}; put the images there "
            "or pass --data.image_root with their folder"
        )
    paths = [os.path.join(base, name) for name in names]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise CaptionDataError(
            f"{source} names {len(missing)} image{'s' if len(missing) > 1 else ''} missing from {base}: "
            f"{_examples(missing)}; restore them or remove their captions"
        )
    return paths


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise CaptionDataError(f"{path} is not valid JSON ({err}); download it again") from None


def read_karpathy(
    path: str, split: str, image_root: str | None = None, folders: Sequence[str] = ("",)
) -> CaptionSet:
    """The images of ``split`` in Karpathy's split file ``path`` and their ``sentences[].raw``.

    Images are ``filepath/filename`` (``filename`` where there is no ``filepath``) under
    ``image_root`` (default: the file's folder), looked for in each of ``folders`` there.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CaptionDataError(f"{path} is not one of Karpathy's split files (no 'images' list)")
    pairs: list[tuple[str, str]] = []
    names: list[str] = []
    for entry in data["images"]:
        if entry.get("split") != split:
            continue
        name = os.path.join(entry.get("filepath", ""), entry["filename"])
        names.append(name)
        pairs += [(name, str(sentence.get("raw", ""))) for sentence in entry.get("sentences", [])]
    if not names:
        found = sorted({str(e.get("split")) for e in data["images"]})
        raise CaptionDataError(f"{path} has no images of split {split!r}; its splits are {found}")
    images, captions, owner = _group(pairs)
    seen = set(images)
    images += [n for n in dict.fromkeys(names) if n not in seen]  # so check_captions names them
    paths = _locate(images, image_root or os.path.dirname(path), folders, path)
    return CaptionSet(paths, captions, owner, path)


_LINE = re.compile(r"^(.*?\.(?:jpe?g|png|webp|bmp)),(.*)$", re.IGNORECASE)


def read_clip_benchmark_txt(
    path: str, image_root: str | None = None, folders: Sequence[str] = ("",)
) -> CaptionSet:
    """CLIP_benchmark's ``{name}_{split}_karpathy.txt``: a header line, then ``image.jpg,caption`` lines."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        f.readline()  # the header, as CLIP_benchmark skips it
        for number, line in enumerate(f, start=2):
            line = line.strip()
            if not line:
                continue
            match = _LINE.match(line)
            if match is None:
                raise CaptionDataError(
                    f"{path}, line {number}: expected 'image.jpg,caption', got {line[:80]!r}"
                )
            pairs.append((match.group(1), match.group(2)))
    if not pairs:
        raise CaptionDataError(f"{path} holds no 'image.jpg,caption' lines")
    images, captions, owner = _group(pairs)
    return CaptionSet(
        _locate(images, image_root or os.path.dirname(path), folders, path), captions, owner, path
    )


def read_clip_benchmark_coco(path: str, image_root: str) -> CaptionSet:
    """CLIP_benchmark's ``coco_{split}_karpathy.json`` (COCO's captions format), images in ``image_root``."""
    data = _load_json(path)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise CaptionDataError(f"{path} is not in COCO's captions format ('images' and 'annotations')")
    files = {int(image["id"]): str(image["file_name"]) for image in data["images"]}
    pairs = []
    for ann in data["annotations"]:
        if int(ann["image_id"]) not in files:
            raise CaptionDataError(
                f"{path}: a caption names image id {ann['image_id']}, which 'images' lacks"
            )
        pairs.append((int(ann["image_id"]), str(ann["caption"])))
    order = {image_id: rank for rank, image_id in enumerate(sorted(files))}
    pairs.sort(key=lambda pair: order[pair[0]])  # stable: each image's captions keep their order
    images, captions, owner = _group([(files[i], caption) for i, caption in pairs])
    seen = set(images)
    images += [files[i] for i in sorted(files) if files[i] not in seen]
    return CaptionSet(_locate(images, image_root, ("",), path), captions, owner, path)


def caption_files(dataset: str, root: str, split: str) -> dict[str, str]:
    """Where each format's annotation file of ``dataset``'s ``split`` would be, by format name."""
    karpathy, prefix, _ = CAPTION_DATASETS[dataset]
    extension = "json" if dataset == "mscoco_captions" else "txt"
    return {
        "karpathy": os.path.join(root, karpathy),
        "clip_benchmark": os.path.join(root, f"{prefix}_{split}_karpathy.{extension}"),
    }


def read_caption_split(
    dataset: str, root: str, split: str = "test", format: str = "auto", image_root: str | None = None
) -> CaptionSet:
    """``dataset``'s ``split`` from ``root`` in ``format`` (``auto``: Karpathy's file if present, else
    CLIP_benchmark's). Raises DatasetNotFoundError naming the files looked for."""
    if dataset not in CAPTION_DATASETS:
        raise DatasetNotFoundError(
            f"unknown caption dataset {dataset!r}; choose from {sorted(CAPTION_DATASETS)}"
        )
    files = caption_files(dataset, root, split)
    if format == "auto":
        format = next((name for name, path in files.items() if os.path.isfile(path)), "")
        if not format:
            raise DatasetNotFoundError(
                f"{dataset} ({split}): found neither {files['karpathy']} (Karpathy's split file) nor "
                f"{files['clip_benchmark']} (CLIP_benchmark's); put one there or pass --data.root"
            )
    if format not in files:
        raise DatasetNotFoundError(f"unknown caption format {format!r}; choose from {['auto', *files]}")
    path = files[format]
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"{dataset} ({split}): {path} not found; put it there or pass --data.root")
    folders = CAPTION_DATASETS[dataset][2]
    if format == "karpathy":
        return read_karpathy(path, split, image_root or root, folders)
    if dataset == "mscoco_captions":
        return read_clip_benchmark_coco(
            path, image_root or os.path.join(root, f"{'train' if split == 'train' else 'val'}2014")
        )
    return read_clip_benchmark_txt(path, image_root or root, folders)
