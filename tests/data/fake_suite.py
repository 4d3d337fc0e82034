"""Fake copies of the CLIP suite's datasets and ImageNet's shifts, each in its real layout."""

from __future__ import annotations

import csv
import json
import string
from pathlib import Path

import numpy as np

from clip_lightning.datasets.imagenet_variants import imagenet_wnids
from tests.data.fake_layouts import image, mkdir, prompt_names, rng_for, write_lines


def fgvc_aircraft(root: Path) -> None:
    rng, base = rng_for("fgvc_aircraft"), root / "fgvc-aircraft-2013b" / "data"
    variants = prompt_names("fgvc_aircraft")
    write_lines(base / "variants.txt", variants)
    for split, picks in (("train", [0, 5]), ("val", [1]), ("test", [3, 72, 99])):
        rows = [f"{1000000 + 10 * k + len(split)} {variants[k]}" for k in picks]
        write_lines(base / f"images_variant_{split}.txt", rows)
        for row in rows:
            image(base / "images" / f"{row.split()[0]}.jpg", rng)


def caltech101(root: Path) -> None:
    rng, base = rng_for("caltech101"), root / "caltech101" / "101_ObjectCategories"
    folders = [
        "BACKGROUND_Google",
        "Faces",
        "Faces_easy",
        "Leopards",
        "Motorbikes",
        *(f"z{i:03d}" for i in range(97)),
    ]
    for k, cls in enumerate(folders):
        for i in range(32 if k in (1, 7) else 1):  # two classes reach past the 30 train images
            image(base / cls / f"image_{i + 1:04d}.jpg", rng)


def sun397(root: Path) -> None:
    rng, base = rng_for("sun397"), root / "SUN397"
    paths = ["/" + name[0] + "/" + name.replace(" ", "_") for name in prompt_names("sun397")]
    write_lines(base / "ClassName.txt", paths)
    train, test = (
        [f"{paths[0]}/sun_a.jpg", f"{paths[5]}/sun_b.jpg"],
        [f"{paths[1]}/sun_c.jpg", f"{paths[396]}/sun_d.jpg"],
    )
    write_lines(base / "Partitions" / "Training_01.txt", train)
    write_lines(base / "Partitions" / "Testing_01.txt", test)
    for p in train + test:
        image(base / p.lstrip("/"), rng)


def stanford_cars(root: Path) -> None:
    from scipy.io import savemat

    rng, base = rng_for("stanford_cars"), root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(
        base / "devkit" / "cars_meta.mat",
        {"class_names": np.array(prompt_names("stanford_cars"), dtype=object)},
    )
    fields = [
        ("bbox_x1", "O"),
        ("bbox_y1", "O"),
        ("bbox_x2", "O"),
        ("bbox_y2", "O"),
        ("class", "O"),
        ("fname", "O"),
    ]
    for mat, folder, classes in (
        (base / "devkit" / "cars_train_annos.mat", "cars_train", [1, 196]),
        (base / "cars_test_annos_withlabels.mat", "cars_test", [14, 3, 196]),
    ):
        rows = np.array([(1, 1, 7, 7, c, f"{i + 1:05d}.jpg") for i, c in enumerate(classes)], dtype=fields)
        savemat(mat, {"annotations": rows})
        for i in range(len(classes)):
            image(base / folder / f"{i + 1:05d}.jpg", rng)


def fer2013(root: Path) -> None:
    rng = rng_for("fer2013")
    (root / "fer2013").mkdir(parents=True)
    with open(root / "fer2013" / "fer2013.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["emotion", "pixels", "Usage"])
        for usage, labels in (("Training", [0, 3]), ("PublicTest", [4]), ("PrivateTest", [6, 3, 5])):
            for label in labels:
                out.writerow([label, " ".join(map(str, rng.integers(0, 256, 48 * 48))), usage])


def gtsrb(root: Path) -> None:
    rng, base = rng_for("gtsrb"), root / "gtsrb"
    for cls in range(43):
        image(base / "GTSRB" / "Training" / f"{cls:05d}" / f"00000_{cls:05d}.ppm", rng)
    rows = [("00000.ppm", 16), ("00001.ppm", 1), ("00002.ppm", 42)]
    with open(mkdir(base) / "GT-final_test.csv", "w", newline="") as f:
        out = csv.writer(f, delimiter=";")
        out.writerow(["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"])
        for name, cls in rows:
            out.writerow([name, 8, 8, 0, 0, 7, 7, cls])
            image(base / "GTSRB" / "Final_Test" / "Images" / name, rng)


def country211(root: Path) -> None:
    rng, base = rng_for("country211"), root / "country211"
    codes = [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase][
        :211
    ]  # sorted, as ISO codes
    for split in ("train", "valid", "test"):
        for code in codes:
            image(base / split / code / f"{split}_{code}.jpg", rng)


def pcam(root: Path) -> None:
    import h5py

    rng, base = rng_for("pcam"), mkdir(root / "pcam")
    for split, labels in (("train", [0, 1]), ("valid", [1]), ("test", [1, 0, 1])):
        stem = base / f"camelyonpatch_level_2_split_{split}"
        pixels = np.full((len(labels), 96, 96, 3), 128, np.uint8)
        pixels[:, :8, :8] = rng.integers(0, 256, (len(labels), 8, 8, 3), dtype=np.uint8)
        with h5py.File(f"{stem}_x.h5", "w") as f:
            f.create_dataset("x", data=pixels, compression="gzip", track_times=False)
        with h5py.File(f"{stem}_y.h5", "w") as f:
            f.create_dataset("y", data=np.array(labels, np.uint8).reshape(-1, 1, 1, 1), track_times=False)


def rendered_sst2(root: Path) -> None:
    rng = rng_for("rendered_sst2")
    for split in ("train", "valid", "test"):
        for cls in ("negative", "positive"):
            image(root / "rendered-sst2" / split / cls / f"{split}_{cls}.png", rng)


def clevr_count(root: Path) -> None:
    rng, base = rng_for("clevr_count"), root / "clevr" / "CLEVR_v1.0"
    for split, counts in (("train", [3, 10]), ("val", [4, 10, 7])):
        scenes = []
        for i, count in enumerate(counts):
            name = f"CLEVR_{split}_{i:06d}.png"
            image(base / "images" / split / name, rng)
            scenes.append({"image_filename": name, "objects": [{"shape": "cube"}] * count})
        mkdir(base / "scenes")
        (base / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"scenes": scenes}))


def svhn(root: Path) -> None:
    from scipy.io import savemat

    rng = rng_for("svhn")
    for split, labels in (("train", [10, 1]), ("test", [10, 3, 9])):  # 10 stands for the digit 0
        pixels = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        savemat(
            mkdir(root) / f"{split}_32x32.mat", {"X": pixels, "y": np.array(labels, np.uint8).reshape(-1, 1)}
        )


def voc2007(root: Path) -> None:
    rng, base = rng_for("voc2007"), root / "VOCdevkit" / "VOC2007"
    sets = {"train": {"000005": ["chair", "chair"]}, "val": {"000007": ["car"]},
            "test": {"000001": ["dog", "person"], "000002": ["train"], "000004": ["car", "diningtable", "pottedplant"]}}  # fmt: skip
    for split, images in sets.items():
        write_lines(base / "ImageSets" / "Main" / f"{split}.txt", list(images))
        for image_id, objects in images.items():
            parts = "".join(f"<object><name>{o}</name><difficult>0</difficult></object>" for o in objects)
            mkdir(base / "Annotations")
            (base / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><filename>{image_id}.jpg</filename>{parts}</annotation>"
            )
            image(base / "JPEGImages" / f"{image_id}.jpg", rng)


def imagenetv2(root: Path) -> None:
    rng = rng_for("imagenetv2")
    for i in range(1000):
        image(root / "imagenetv2-matched-frequency-format-val" / str(i) / f"{i}.jpeg", rng)


def imagenet_sketch(root: Path) -> None:
    rng = rng_for("imagenet_sketch")
    for wnid in imagenet_wnids():
        image(root / "sketch" / wnid / f"sketch_{wnid}.JPEG", rng)


def imagenet_a(root: Path) -> None:
    rng = rng_for("imagenet_a")
    for wnid in imagenet_wnids("imagenet_a"):
        image(root / "imagenet-a" / wnid / f"{wnid}_a.jpg", rng)


def imagenet_r(root: Path) -> None:
    rng = rng_for("imagenet_r")
    for wnid in imagenet_wnids("imagenet_r"):
        image(root / "imagenet-r" / wnid / f"art_{wnid}.jpg", rng)


def objectnet(root: Path) -> None:
    rng, base = rng_for("objectnet"), root / "objectnet-1.0"
    folders = {
        "air_freshener": "Air freshener",
        "alarm_clock": "Alarm clock",
        "backpack": "Backpack",
        "banana": "Banana",
    }
    overlap = {"Alarm clock": "analog clock; digital clock", "Backpack": "backpack", "Banana": "banana"}
    mkdir(base / "mappings")
    (base / "mappings" / "folder_to_objectnet_label.json").write_text(json.dumps(folders))
    (base / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps(overlap))
    for folder in folders:
        for i in range(2):
            image(base / "images" / folder / f"{i}.png", rng)
