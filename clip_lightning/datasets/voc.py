"""Pascal VOC 2007 as multi-label classification: each image's classes from its detection annotations."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from ..errors import UserError
from .prompts import dataset_prompts
from .samples import LabeledImages, MultiLabelImageFiles
from .torchvision_sets import fetch, require

__all__ = ["voc2007", "voc_labels"]


def voc_labels(annotation: str, classes: list[str]) -> np.ndarray:
    """Multi-hot over ``classes``: the classes of every object in an annotation XML (difficult ones too)."""
    index = {name: i for i, name in enumerate(classes)}
    row = np.zeros(len(classes), dtype=bool)
    for obj in ET.parse(annotation).getroot().iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in index:
            raise UserError(f"voc2007: {annotation} names an unknown class {name!r}; VOC2007 has {classes}")
        row[index[name]] = True
    return row


def voc2007(root: str, split: str, download: bool) -> LabeledImages:
    """VOC2007's official train, val and test image sets (ImageSets/Main/{split}.txt)."""
    from torchvision import datasets as tv

    base = os.path.join(root, "VOCdevkit", "VOC2007")
    listing = os.path.join(base, "ImageSets", "Main", f"{split}.txt")

    def factory() -> LabeledImages:
        if download and not os.path.exists(listing):
            tv.VOCDetection(root, year="2007", image_set=split, download=True)
        layout = "VOCdevkit/VOC2007/{ImageSets/Main/{train,val,test}.txt, Annotations/<id>.xml, JPEGImages/<id>.jpg}"
        require("voc2007", split, root, [listing], layout)
        with open(listing) as f:
            ids = [line.strip() for line in f if line.strip()]
        classes = [str(c) for c in dataset_prompts("voc2007")[0]]  # OpenAI's order, not alphabetical
        annotations = [os.path.join(base, "Annotations", f"{i}.xml") for i in ids]
        require("voc2007", split, root, annotations[:1], layout)
        labels = (
            np.stack([voc_labels(a, classes) for a in annotations]) if ids else np.zeros((0, len(classes)))
        )
        files = [os.path.join(base, "JPEGImages", f"{i}.jpg") for i in ids]
        return MultiLabelImageFiles(files, labels, classes, split=split)

    return fetch("voc2007", root, split, download, factory)
