"""ImageNet's distribution shifts as their authors ship them: test sets of class folders.

ImageNet-V2 names its folders by class index, Sketch by wnid (all 1,000 classes); ImageNet-A and
-R hold 200 classes each, labelled by their place among those 200 in ImageNet order, so the
zero-shot classifier is built from those 200 names: the paper's restriction of the 1,000-class
logits. ObjectNet's folders and its mapping to ImageNet are read from its own ``mappings``.
None of these can be downloaded by torchvision: a missing folder says where to get it.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources

from ..errors import DatasetNotFoundError
from .folders import class_folders, folder_images, labelled_folders
from .samples import ImageFiles, LabeledImages
from .torchvision_sets import require

__all__ = [
    "imagenet_a",
    "imagenet_r",
    "imagenet_sketch",
    "imagenet_wnids",
    "imagenetv2",
    "objectnet",
    "objectnet_prompts",
]

_SOURCES = {
    "imagenetv2": "https://huggingface.co/datasets/vaishaal/ImageNetV2 (imagenetv2-matched-frequency.tar.gz)",
    "imagenet_sketch": "https://github.com/HaohanWang/ImageNet-Sketch (ImageNet-Sketch.zip)",
    "imagenet_a": "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar",
    "imagenet_r": "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar",
    "objectnet": "https://objectnet.dev/download.html (objectnet-1.0.zip)",
}


@lru_cache(maxsize=1)
def _wnids() -> dict[str, list[str]]:
    text = resources.files("clip_lightning").joinpath("datasets", "imagenet_wnids.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def imagenet_wnids(subset: str = "imagenet") -> list[str]:
    """The wnids of ``imagenet`` (1,000, class order), ``imagenet_a`` or ``imagenet_r`` (200 each)."""
    return list(_wnids()[subset])


def _how(name: str) -> str:
    return f"torchvision cannot download it (--data.download true cannot help): get it from {_SOURCES[name]} and unpack it there."


def _test_only(name: str, split: str) -> None:
    """Every shift is a test set only: there is no train split to fit a probe on or carve val from."""
    if split != "test":
        raise DatasetNotFoundError(
            f"{name} has only a test split (asked for {split}): evaluate it zero-shot; a linear probe "
            "needs a dataset with a train split"
        )


def _folder(root: str, name: str, candidates: list[str], layout: str) -> str:
    """The first of ``candidates`` (under ``root``) that exists, else the one clear error."""
    paths = [os.path.join(root, c) if c else root for c in candidates]
    found = next((p for p in paths if os.path.isdir(p) and class_folders(p)), None)
    if found is None:
        require(name, "test", root, [paths[0]], layout, _how(name))
    assert found is not None
    return found


def imagenetv2(root: str, split: str, download: bool) -> LabeledImages:
    """ImageNetV2 (matched frequency): folders ``0`` ... ``999`` named by ImageNet class index."""
    _test_only("imagenetv2", split)
    layout = "imagenetv2-matched-frequency-format-val/<class index 0-999>/<image>.jpeg"
    folder = _folder(root, "imagenetv2", ["imagenetv2-matched-frequency-format-val", ""], layout)
    return labelled_folders("imagenetv2", split, folder, [str(i) for i in range(1000)])


def imagenet_sketch(root: str, split: str, download: bool) -> LabeledImages:
    """ImageNet-Sketch: ``sketch/<wnid>/<image>``, all 1,000 classes."""
    _test_only("imagenet_sketch", split)
    folder = _folder(root, "imagenet_sketch", ["sketch", ""], "sketch/<wnid>/<image>.JPEG")
    return labelled_folders("imagenet_sketch", split, folder, imagenet_wnids())


def imagenet_a(root: str, split: str, download: bool) -> LabeledImages:
    """ImageNet-A: ``imagenet-a/<wnid>/<image>``, 200 classes."""
    _test_only("imagenet_a", split)
    folder = _folder(root, "imagenet_a", ["imagenet-a", ""], "imagenet-a/<wnid>/<image>.jpg (200 wnids)")
    return labelled_folders("imagenet_a", split, folder, imagenet_wnids("imagenet_a"))


def imagenet_r(root: str, split: str, download: bool) -> LabeledImages:
    """ImageNet-R: ``imagenet-r/<wnid>/<image>``, 200 classes."""
    _test_only("imagenet_r", split)
    folder = _folder(root, "imagenet_r", ["imagenet-r", ""], "imagenet-r/<wnid>/<image>.jpg (200 wnids)")
    return labelled_folders("imagenet_r", split, folder, imagenet_wnids("imagenet_r"))


def objectnet(root: str, split: str, download: bool) -> LabeledImages:
    """ObjectNet's 113 classes that map to ImageNet (as CLIP_benchmark and DataComp score it).

    Classes are the ObjectNet folders whose label ``mappings/objectnet_to_imagenet_1k.json`` maps
    to ImageNet classes, sorted by folder; their names are ObjectNet's labels, lower-cased.
    """
    _test_only("objectnet", split)
    base = os.path.join(root, "objectnet-1.0")
    folders, names = _objectnet_classes(root, split)
    files: list[str] = []
    targets: list[int] = []
    for label, folder in enumerate(folders):
        images = folder_images(os.path.join(base, "images", folder))
        files += images
        targets += [label] * len(images)
    return ImageFiles(files, targets, names, split=split)


def _objectnet_classes(root: str, split: str) -> tuple[list[str], list[str]]:
    """ObjectNet's overlapping class folders (sorted) and their names, from its mappings."""
    base = os.path.join(root, "objectnet-1.0")
    mappings = [
        os.path.join(base, "mappings", f)
        for f in ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json")
    ]
    layout = "objectnet-1.0/images/<folder>/<image>.png and objectnet-1.0/mappings/{folder_to_objectnet_label,objectnet_to_imagenet_1k}.json"
    require("objectnet", split, root, [*mappings, os.path.join(base, "images")], layout, _how("objectnet"))
    with open(mappings[0]) as f:
        folder_label = json.load(f)
    with open(mappings[1]) as f:
        overlapping = set(json.load(f))
    folders = sorted(folder for folder, label in folder_label.items() if label in overlapping)
    return folders, [folder_label[folder].lower() for folder in folders]


def objectnet_prompts(root: str) -> tuple[list[str] | None, list[str] | None]:
    """ObjectNet's class names (from the mappings under ``root``; None when absent) and ImageNet's templates."""
    from .prompts import dataset_prompts

    try:
        names: list[str] | None = _objectnet_classes(root, "test")[1]
    except DatasetNotFoundError:
        names = None
    return names, dataset_prompts("imagenet")[1]
