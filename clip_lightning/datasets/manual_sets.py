"""Datasets in torchvision's layouts that torchvision cannot (wholly) download: read from disk.

A missing file is one message with the manual steps and the layout expected under ``--data.root``;
``--data.download true`` fetches what can be fetched (SUN397's images and partition files) and
for the rest says the same.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from ..errors import DatasetNotFoundError
from .samples import ImageArrays, ImageFiles, LabeledImages
from .torchvision_sets import fetch, require

__all__ = ["FER_USAGE", "SUN397_PARTITIONS_URL", "fer2013", "stanford_cars", "sun397"]

SUN397_PARTITIONS_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"
# FER2013's official splits as its "Usage" column names them.
FER_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def sun397(root: str, split: str, download: bool) -> LabeledImages:
    """SUN397, the first of its ten official partitions (Training_01.txt / Testing_01.txt)."""
    from torchvision import datasets as tv
    from torchvision.datasets.utils import download_and_extract_archive

    base = os.path.join(root, "SUN397")
    name = f"{'Training' if split == 'train' else 'Testing'}_01.txt"
    places = [os.path.join(base, "Partitions", name), os.path.join(base, name)]

    def factory() -> LabeledImages:
        if download:
            tv.SUN397(root, download=True)  # images and ClassName.txt
            if not any(os.path.exists(p) for p in places):
                download_and_extract_archive(SUN397_PARTITIONS_URL, download_root=base)
        layout = "SUN397/ClassName.txt, SUN397/<letter>/<class>/sun_*.jpg, SUN397/Partitions/{Training,Testing}_01.txt"
        how = (
            "Pass --data.download true (torchvision fetches the images, then the partition files come "
            f"from {SUN397_PARTITIONS_URL}), or put both there by hand."
        )
        partition = next((p for p in places if os.path.exists(p)), places[0])
        require("sun397", split, root, [os.path.join(base, "ClassName.txt"), partition], layout, how)
        with open(os.path.join(base, "ClassName.txt")) as f:
            classes = [line.strip()[3:] for line in f if line.strip()]  # "/a/abbey" -> "abbey"
        index = {c: i for i, c in enumerate(classes)}
        with open(partition) as f:
            paths = [line.strip().lstrip("/") for line in f if line.strip()]
        files = [os.path.join(base, *p.split("/")) for p in paths]
        targets = [index["/".join(p.split("/")[1:-1])] for p in paths]
        return ImageFiles(files, targets, classes, split=split)

    return fetch("sun397", root, split, download, factory)


def stanford_cars(root: str, split: str, download: bool) -> LabeledImages:
    """Stanford Cars (196 classes) in torchvision's layout; its download site is gone."""
    from scipy.io import loadmat

    base = os.path.join(root, "stanford_cars")
    if split == "train":
        annotations, images = os.path.join(base, "devkit", "cars_train_annos.mat"), "cars_train"
    else:
        annotations, images = os.path.join(base, "cars_test_annos_withlabels.mat"), "cars_test"
    meta = os.path.join(base, "devkit", "cars_meta.mat")
    how = (
        "torchvision cannot download Stanford Cars (its site is gone; --data.download true cannot help): "
        "get the images (cars_train.tgz, cars_test.tgz), the devkit (car_devkit.tgz) and "
        "cars_test_annos_withlabels.mat from a mirror (e.g. Kaggle's stanford-cars-dataset) and unpack them there."
    )
    layout = (
        "stanford_cars/{cars_train,cars_test}/<image>.jpg, stanford_cars/devkit/{cars_meta.mat, "
        "cars_train_annos.mat}, stanford_cars/cars_test_annos_withlabels.mat"
    )
    require("stanford_cars", split, root, [meta, annotations, os.path.join(base, images)], layout, how)
    classes = [str(c) for c in loadmat(meta, squeeze_me=True)["class_names"].tolist()]
    rows = np.atleast_1d(loadmat(annotations, squeeze_me=True)["annotations"])
    files = [os.path.join(base, images, str(row["fname"])) for row in rows]
    return ImageFiles(files, [int(row["class"]) - 1 for row in rows], classes, split=split)


def fer2013(root: str, split: str, download: bool) -> LabeledImages:
    """FER2013 48x48 faces from Kaggle's CSV; train, val and test are its Training, PublicTest and
    PrivateTest rows. Labels 0-6: angry, disgusted, fearful, happy, sad, surprised, neutral."""
    base = os.path.join(root, "fer2013")
    candidates = [os.path.join(base, "fer2013.csv"), os.path.join(base, "icml_face_data.csv")]
    path = next((p for p in candidates if os.path.exists(p)), None)
    if path is None:
        how = (
            "torchvision cannot download FER2013 (--data.download true cannot help): download fer2013.tar.gz "
            "from Kaggle's challenges-in-representation-learning-facial-expression-recognition-challenge "
            "and unpack it there (the labelled fer2013.csv; the challenge's test.csv has no labels)."
        )
        require("fer2013", split, root, candidates[:1], "fer2013/fer2013.csv (or icml_face_data.csv)", how)
    assert path is not None

    def factory() -> LabeledImages:
        with open(path, newline="") as f:
            rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
        rows = [row for row in rows if row["Usage"].strip() == FER_USAGE[split]]
        if not rows:
            raise DatasetNotFoundError(
                f"fer2013 ({split}): {path} has no {FER_USAGE[split]} rows; use Kaggle's complete fer2013.csv"
            )
        pixels = np.stack([np.array(row["pixels"].split(), dtype=np.uint8) for row in rows]).reshape(
            -1, 48, 48
        )
        names = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
        return ImageArrays(pixels, [int(row["emotion"]) for row in rows], names)

    return fetch("fer2013", root, split, download, factory)
