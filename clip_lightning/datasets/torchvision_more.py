"""More datasets torchvision downloads (the CLIP paper's suite): torchvision fetches, these read.

Each loader reads the files of torchvision's layout itself (after ``download`` let torchvision
fetch them), so a missing file is one message naming it and the layout, and labels come from
the dataset's own annotation files, never from torchvision's private attributes.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from .folders import class_folders, folder_images, labelled_folders
from .prompts import dataset_prompts
from .samples import ImageArrays, ImageFiles, LabeledImages
from .torchvision_sets import fetch, require

__all__ = [
    "CALTECH_TRAIN_PER_CLASS",
    "caltech101",
    "clevr_count",
    "country211",
    "fgvc_aircraft",
    "gtsrb",
    "rendered_sst2",
    "svhn",
]

# The CLIP paper's Caltech-101 protocol (3,060 train images): 30 per class; its draw is not published.
CALTECH_TRAIN_PER_CLASS = 30


def fgvc_aircraft(root: str, split: str, download: bool) -> LabeledImages:
    """FGVC Aircraft (variants): data/images_variant_{split}.txt lines ``<image id> <variant>``."""
    from torchvision import datasets as tv

    base = os.path.join(root, "fgvc-aircraft-2013b", "data")
    listing = os.path.join(base, f"images_variant_{split}.txt")

    def factory() -> LabeledImages:
        if download:
            tv.FGVCAircraft(root, split=split, download=True)
        layout = "fgvc-aircraft-2013b/data/{variants.txt, images_variant_<split>.txt, images/<id>.jpg}"
        require("fgvc_aircraft", split, root, [os.path.join(base, "variants.txt"), listing], layout)
        with open(os.path.join(base, "variants.txt")) as f:
            classes = [line.strip() for line in f if line.strip()]
        index = {name: i for i, name in enumerate(classes)}
        with open(listing) as f:
            rows = [line.strip().split(" ", 1) for line in f if line.strip()]
        files = [os.path.join(base, "images", f"{image}.jpg") for image, _ in rows]
        return ImageFiles(files, [index[variant] for _, variant in rows], classes, split=split)

    return fetch("fgvc_aircraft", root, split, download, factory)


def caltech101(root: str, split: str, download: bool) -> LabeledImages:
    """Caltech-101 with its background class (102, as the CLIP paper): per class folder (sorted, as
    OpenAI's names are), the first 30 images in file order are train, the rest test."""
    from torchvision import datasets as tv

    base = os.path.join(root, "caltech101", "101_ObjectCategories")

    def factory() -> LabeledImages:
        if download:
            tv.Caltech101(root, download=True)
        require("caltech101", split, root, [base], "caltech101/101_ObjectCategories/<class>/image_<NNNN>.jpg")
        classes = class_folders(base)
        files: list[str] = []
        targets: list[int] = []
        for label, name in enumerate(classes):
            images = folder_images(os.path.join(base, name))
            chosen = (
                images[:CALTECH_TRAIN_PER_CLASS] if split == "train" else images[CALTECH_TRAIN_PER_CLASS:]
            )
            files += chosen
            targets += [label] * len(chosen)
        return ImageFiles(files, targets, classes, split=split)

    return fetch("caltech101", root, split, download, factory)


def gtsrb(root: str, split: str, download: bool) -> LabeledImages:
    """GTSRB: train is GTSRB/Training/<class id>/*.ppm, test is listed in GT-final_test.csv."""
    from torchvision import datasets as tv

    base = os.path.join(root, "gtsrb")

    def factory() -> LabeledImages:
        if download:
            tv.GTSRB(root, split=split, download=True)
        layout = (
            "gtsrb/GTSRB/Training/<5-digit class id>/*.ppm; gtsrb/GT-final_test.csv and "
            "gtsrb/GTSRB/Final_Test/Images/*.ppm"
        )
        classes = [str(i) for i in range(43)]
        if split == "train":
            folder = os.path.join(base, "GTSRB", "Training")
            require("gtsrb", split, root, [folder], layout)
            files: list[str] = []
            targets: list[int] = []
            for name in class_folders(folder):
                ppm = [f for f in folder_images(os.path.join(folder, name)) if f.endswith(".ppm")]
                files += ppm
                targets += [int(name)] * len(ppm)
            return ImageFiles(files, targets, classes, split=split)
        table = os.path.join(base, "GT-final_test.csv")
        require("gtsrb", split, root, [table], layout)
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";", skipinitialspace=True))
        images = os.path.join(base, "GTSRB", "Final_Test", "Images")
        listed = [os.path.join(images, row["Filename"]) for row in rows]
        return ImageFiles(listed, [int(row["ClassId"]) for row in rows], classes, split=split)

    return fetch("gtsrb", root, split, download, factory)


def country211(root: str, split: str, download: bool) -> LabeledImages:
    """Country211: country211/{train,valid,test}/<ISO 3166 code>/*.jpg; 211 codes, sorted."""
    from torchvision import datasets as tv

    folder = os.path.join(root, "country211", {"val": "valid"}.get(split, split))

    def factory() -> LabeledImages:
        if download:
            tv.Country211(root, split={"val": "valid"}.get(split, split), download=True)
        require(
            "country211",
            split,
            root,
            [folder],
            "country211/{train,valid,test}/<ISO country code>/<image>.jpg",
        )
        # OpenAI's 211 names follow the sorted codes; every split is labelled by train's codes
        train = os.path.join(root, "country211", "train")
        codes = class_folders(train) if os.path.isdir(train) else class_folders(folder)
        return labelled_folders("country211", split, folder, codes)

    return fetch("country211", root, split, download, factory)


def rendered_sst2(root: str, split: str, download: bool) -> LabeledImages:
    """Rendered SST2: rendered-sst2/{train,valid,test}/{negative,positive}/*.png."""
    from torchvision import datasets as tv

    folder = os.path.join(root, "rendered-sst2", {"val": "valid"}.get(split, split))

    def factory() -> LabeledImages:
        if download:
            tv.RenderedSST2(root, split=split, download=True)
        require(
            "rendered_sst2",
            split,
            root,
            [folder],
            "rendered-sst2/{train,valid,test}/{negative,positive}/*.png",
        )
        return labelled_folders("rendered_sst2", split, folder, ["negative", "positive"])

    return fetch("rendered_sst2", root, split, download, factory)


def svhn(root: str, split: str, download: bool) -> LabeledImages:
    """SVHN (cropped digits): {split}_32x32.mat, ``X`` (32, 32, 3, N) and ``y`` (10 stands for 0)."""
    from scipy.io import loadmat
    from torchvision import datasets as tv

    path = os.path.join(root, f"{split}_32x32.mat")

    def factory() -> LabeledImages:
        if download and not os.path.exists(path):
            tv.SVHN(root, split=split, download=True)
        require("svhn", split, root, [path], "{train,test}_32x32.mat (the cropped-digits format)")
        mat = loadmat(path)
        labels = mat["y"].astype(np.int64).reshape(-1) % 10  # the digit 0 is stored as 10
        images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)))
        return ImageArrays(images, labels.tolist(), [str(i) for i in range(10)])

    return fetch("svhn", root, split, download, factory)


def clevr_count(root: str, split: str, download: bool) -> LabeledImages:
    """CLEVR object counts (3-10): train is CLEVR's train, test its val (as VTAB; CLEVR's test has
    no scenes). Labels follow OpenAI's class order, the counts as sorted strings ('10', '3', ...)."""
    from torchvision import datasets as tv

    official = "val" if split == "test" else split
    base = os.path.join(root, "clevr", "CLEVR_v1.0")
    scenes = os.path.join(base, "scenes", f"CLEVR_{official}_scenes.json")

    def factory() -> LabeledImages:
        if download:
            tv.CLEVRClassification(root, split=official, download=True)
        layout = "clevr/CLEVR_v1.0/images/{train,val}/*.png and clevr/CLEVR_v1.0/scenes/CLEVR_{train,val}_scenes.json"
        require("clevr_count", split, root, [scenes], layout)
        with open(scenes) as f:
            content = json.load(f)["scenes"]
        names = [str(c) for c in dataset_prompts("clevr_count")[0]]
        index = {int(n): i for i, n in enumerate(names)}
        folder = os.path.join(base, "images", official)
        rows = sorted((s["image_filename"], len(s["objects"])) for s in content)
        files = [os.path.join(folder, name) for name, _ in rows]
        return ImageFiles(files, [index[count] for _, count in rows], names, split=split)

    return fetch("clevr_count", root, split, download, factory)
