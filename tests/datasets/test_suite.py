"""The CLIP suite's datasets: OpenAI's prompts, a CLI run on every fake copy, clear errors, torchvision as oracle.

Fake copies in each dataset's real layout are made by ``tests/data/make_fake_datasets.py``
(committed under ``tests/data/<name>/``, or written to a temporary folder for the datasets with
hundreds of classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from clip_lightning.datasets import DATASETS, get_dataset_info
from clip_lightning.datasets.imagenet_variants import imagenet_wnids
from clip_lightning.datasets.prompts import class_names_of, dataset_prompts
from clip_lightning.errors import UserError
from tests.data import make_fake_datasets as fake
from tests.data.make_prompts import PACKAGE, PROMPTS_MD, SECTIONS, build_table
from tests.test_cli import Cli, conf, results, workdir  # noqa: F401  (workdir: a fixture)

# wds is CLIP_benchmark's WebDataset reader (tests/datasets/test_wds.py); digits is bundled.
FAKED = [name for name in DATASETS if name not in ("wds", "digits")]


def openai_lists() -> dict[str, dict[str, list]]:
    """Every section of the copy of OpenAI's prompts.md: its two Python lists, run as Python."""
    sections: dict[str, dict[str, list]] = {}
    for part in PROMPTS_MD.read_text(encoding="utf-8").split("\n## ")[1:]:
        title, rest = part.split("\n", 1)
        code = rest.split("```bash\n", 1)[1].split("```", 1)[0]
        namespace: dict[str, list] = {}
        exec(code, {}, namespace)  # our own copy of a data file: two list literals
        sections[title.strip()] = namespace
    return sections


def test_every_registered_prompt_list_equals_openais() -> None:
    lists = openai_lists()
    assert len(lists) == 26 and set(lists) == set(SECTIONS)  # the 26 of Table 9's 27 prompts.md covers
    checked = set()
    for info in DATASETS.values():
        key = info.prompts
        if key is None or key.startswith("imagenet"):
            continue
        title = next(t for t, k in SECTIONS.items() if k == key)
        names, templates = dataset_prompts(key)
        expected = [c if isinstance(c, list) else [c] for c in lists[title]["classes"]]
        assert [list(class_names_of(n)) for n in names] == expected, info.name
        assert templates == lists[title]["templates"], info.name
        checked.add(info.name)
    assert {"fer2013", "voc2007", "sun397", "stanford_cars", "caltech101", "pcam", "svhn"} <= checked
    # FER2013: several names for some classes, all kept
    fer = dataset_prompts("fer2013")[0]
    assert [class_names_of(n) for n in fer][3:] == [
        ("happy", "smiling"), ("sad", "depressed"), ("surprised", "shocked", "spooked"), ("neutral", "bored")
    ]  # fmt: skip
    # The suite that comes through the WebDataset reader has its lists too
    for key in ("birdsnap", "resisc45", "kitti_distance", "hateful_memes", "ucf101", "kinetics700"):
        assert dataset_prompts(key)[0]


def test_imagenet_shifts_use_the_imagenet_lists() -> None:
    names, templates = dataset_prompts("imagenet")
    assert len(names) == 1000 and len(templates) == 80 and names[0] == "tench"
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    for subset in ("imagenet_a", "imagenet_r"):
        wnids = imagenet_wnids(subset)
        assert len(wnids) == 200 == len(set(wnids)) and wnids == sorted(wnids)
        assert dataset_prompts(subset) == ([names[position[w]] for w in wnids], templates)
    for name in ("imagenetv2", "imagenet_sketch"):
        assert get_dataset_info(name).prompts == "imagenet"
    assert imagenet_wnids("imagenet_a")[:3] == ["n01498041", "n01531178", "n01534433"]  # natural-adv-examples
    assert dataset_prompts("imagenet_r")[0][:2] == ["goldfish", "great white shark"]


def test_prompts_json_is_generated_from_prompts_md() -> None:
    on_disk = json.loads((PACKAGE / "prompts.json").read_text(encoding="utf-8"))
    wnids = json.loads((PACKAGE / "imagenet_wnids.json").read_text(encoding="utf-8"))
    rebuilt = build_table(PROMPTS_MD.read_text(encoding="utf-8"), on_disk["imagenet"], wnids)
    assert rebuilt == on_disk, "prompts.json is stale; run: python tests/data/make_prompts.py"


def test_paper_metrics() -> None:
    recall = {"fgvc_aircraft", "oxford_pets", "caltech101", "flowers102"}
    for name in FAKED:
        info = get_dataset_info(name)
        expected = "mean_per_class_recall" if name in recall else "acc1"
        if name == "voc2007":
            expected = "mean_average_precision"
        assert info.main_metric == expected, name
        assert info.multilabel == (name == "voc2007")


def fake_root(name: str, tmp_path: Path) -> Path:
    if name in fake.GENERATED:
        return fake.write(name, tmp_path / f"fake-{name}")
    return fake.DATA / name


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision checks the md5 sums of the real files of these; the fake copies are read as is."""
    for module in ("cifar", "stl10", "flowers102", "svhn", "fer2013"):
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", lambda *args, **kwargs: True)


@pytest.mark.parametrize("name", FAKED)
def test_cli_runs_on_the_fake_copy(name: str, workdir: Path, cli: Cli, tmp_path: Path, no_md5: None) -> None:  # noqa: F811
    root = fake_root(name, tmp_path)
    args = conf(dataset=name, root=str(root), batch_size=16)
    info = get_dataset_info(name)
    names = dataset_prompts(info.prompts)[0] if info.prompts else []
    if len(names) * len(dataset_prompts(info.prompts)[1] if info.prompts else []) > 2000:
        args += ["--model.templates", '["a photo of a {}."]']  # 80k ImageNet prompts would dominate the suite
    code, _, err = cli("test", *args)
    assert code == 0, err[-3000:]
    res = results(workdir)
    assert res["dataset"] == name and res["num_test_samples"] > 0
    assert info.main_metric in res["metrics"], res["metrics"]
    assert 0.0 <= res["metrics"][info.main_metric] <= 1.0
    if info.prompts:
        assert res["classnames"] == [str(n) for n in names]


@pytest.mark.parametrize("name", FAKED)
def test_missing_data_is_one_clear_message(name: str, tmp_path: Path) -> None:
    info = get_dataset_info(name)
    split = "test" if "test" in info.splits or not info.splits else info.splits[0]
    with pytest.raises(UserError) as err:
        info.load(str(tmp_path / "empty"), split if info.splits else "all", False)
    message = str(err.value)
    assert str(tmp_path / "empty") in message or "--data.root" in message, message
    if name in (
        "stanford_cars",
        "fer2013",
        "imagenetv2",
        "imagenet_sketch",
        "imagenet_a",
        "imagenet_r",
        "objectnet",
    ):
        assert "cannot download" in message and "Expected layout" in message, message


def test_shifts_have_only_a_test_split(tmp_path: Path) -> None:
    root = fake.write("imagenet_a", tmp_path / "a")
    with pytest.raises(UserError, match="imagenet_a has only a test split"):
        get_dataset_info("imagenet_a").load(str(root), "train", False)
    test = get_dataset_info("imagenet_a").load(str(root), "test", False)
    assert sorted(test.targets) == list(range(200))


def test_fer2013_classes_ensemble_over_all_their_names() -> None:
    from clip_lightning.datasets import ClassName
    from clip_lightning.models import CLIP
    from clip_lightning.tasks.classifier import build_zero_shot_classifier, encode_texts
    from tests.helpers import TINY_VIT, random_state_dict

    model = CLIP(TINY_VIT)
    model.load_state_dict(random_state_dict(TINY_VIT))
    model.eval()
    templates = ["a photo of a {} looking face.", "they look {}."]
    weights = build_zero_shot_classifier(model, ["angry", ClassName(["happy", "smiling"])], templates)
    texts = [t.format(n) for n in ("happy", "smiling") for t in templates]
    mean = encode_texts(model, texts).mean(dim=0)
    torch.testing.assert_close(weights[:, 1], mean / mean.norm())
    alone = build_zero_shot_classifier(model, ["angry", "happy"], templates)
    assert torch.equal(weights[:, 0], alone[:, 0]) and not torch.allclose(weights[:, 1], alone[:, 1])
    assert ClassName(["happy", "smiling"]) != "happy" and ClassName(["happy"]) == "happy"


def _pairs(ours: Any, theirs: Any, n: int) -> Iterator[tuple[Any, Any]]:
    for i in range(n):
        (image, label), (expected, expected_label) = ours[i], theirs[i]
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(expected.convert("RGB")))
        yield label, expected_label


@pytest.mark.parametrize(
    ("name", "split", "make"),
    [
        ("fgvc_aircraft", "test", lambda tv, r: tv.FGVCAircraft(r, split="test")),
        ("gtsrb", "test", lambda tv, r: tv.GTSRB(r, split="test")),
        ("gtsrb", "train", lambda tv, r: tv.GTSRB(r, split="train")),
        ("rendered_sst2", "val", lambda tv, r: tv.RenderedSST2(r, split="val")),
        ("svhn", "test", lambda tv, r: tv.SVHN(r, split="test")),
        ("stanford_cars", "test", lambda tv, r: tv.StanfordCars(r, split="test")),
        ("fer2013", "train", lambda tv, r: tv.FER2013(r, split="train")),
        ("pcam", "val", lambda tv, r: tv.PCAM(r, split="val")),
        ("clevr_count", "test", lambda tv, r: tv.CLEVRClassification(r, split="val")),
        ("voc2007", "test", lambda tv, r: tv.VOCDetection(r, year="2007", image_set="test")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_splits_equal_torchvisions_reading(
    name: str, split: str, make: Callable[[Any, str], Any], no_md5: None
) -> None:
    from torchvision import datasets as tv

    root = str(fake.DATA / name)
    ours = get_dataset_info(name).load(root, split, False)
    theirs = make(tv, root)
    assert len(ours) == len(theirs) > 0
    classes = [str(c) for c in dataset_prompts(get_dataset_info(name).prompts or "")[0]]
    for label, expected in _pairs(ours, theirs, len(ours)):
        if (
            name == "clevr_count"
        ):  # torchvision gives the count; OpenAI's classes are the counts as sorted strings
            expected = classes.index(str(expected))
        elif name == "voc2007":  # torchvision gives the annotation; we give its classes, multi-hot
            objects = {o["name"] for o in expected["annotation"]["object"]}
            expected = torch.tensor([float(c in objects) for c in classes])
            assert torch.equal(label, expected)
            continue
        assert label == expected


def test_sun397_partition_labels_equal_torchvisions() -> None:
    from torchvision import datasets as tv

    root = str(fake.DATA / "sun397")
    theirs = tv.SUN397(root)  # every image it finds, labelled from its folders and ClassName.txt
    by_pixels = {
        np.asarray(image).tobytes(): label for image, label in (theirs[i] for i in range(len(theirs)))
    }
    for split in ("train", "test"):
        ours = get_dataset_info("sun397").load(root, split, False)
        assert len(ours) == 2
        assert [by_pixels[np.asarray(ours[i][0]).tobytes()] for i in range(2)] == ours.targets
    assert ours.classes == theirs.classes
