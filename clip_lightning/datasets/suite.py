"""The suites CLIP models are reported on, and where each dataset of them comes from here.

The CLIP paper's 27 datasets (Table 9) and ImageNet's shifts are registry entries where
torchvision (or the authors' folders) provide them; the rest come through CLIP_benchmark's
WebDataset folders (``--data.dataset wds``), whose class names and templates the folder holds
(OpenAI's lists for them are in ``prompts.json`` under the key given here).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SUITE", "SuiteEntry"]


@dataclass(frozen=True)
class SuiteEntry:
    """One dataset of the suites.

    Attributes:
        title: its name in the CLIP paper (or DataComp).
        dataset: the registry name, or None when it comes through the WebDataset reader.
        prompts: its key in ``prompts.json`` (OpenAI's class names and templates), if any.
        paper_metric: the metric the CLIP paper reports (None: not in the paper's tables).
        datacomp_metric: DataComp's main metric for it (None: not one of DataComp's 38 tasks).
        note: why it is not registered, or how it differs.
    """

    title: str
    dataset: str | None
    prompts: str | None
    paper_metric: str | None
    datacomp_metric: str | None
    note: str = ""


_WDS = "no torchvision class: a CLIP_benchmark WebDataset folder, `--data.dataset wds --data.root <folder>`"
_R = "mean_per_class_recall"

SUITE: tuple[SuiteEntry, ...] = (
    SuiteEntry("Food-101", "food101", "food101", "acc1", "acc1"),
    SuiteEntry("CIFAR-10", "cifar10", "cifar10", "acc1", "acc1"),
    SuiteEntry("CIFAR-100", "cifar100", "cifar100", "acc1", "acc1"),
    SuiteEntry("Birdsnap", None, "birdsnap", "acc1", None, _WDS + " (images are URLs; many are gone)"),
    SuiteEntry("SUN397", "sun397", "sun397", "acc1", "acc1"),
    SuiteEntry("Stanford Cars", "stanford_cars", "stanford_cars", "acc1", "acc1", "manual download"),
    SuiteEntry("FGVC Aircraft", "fgvc_aircraft", "fgvc_aircraft", _R, _R),
    SuiteEntry(
        "Pascal VOC 2007",
        "voc2007",
        "voc2007",
        "mean_average_precision",
        "acc1",
        "DataComp scores CLIP_benchmark's cropped single objects (`wds`), a different task",
    ),
    SuiteEntry("Describable Textures", "dtd", "dtd", "acc1", "acc1"),
    SuiteEntry("Oxford-IIIT Pets", "oxford_pets", "oxford_pets", _R, _R),
    SuiteEntry("Caltech-101", "caltech101", "caltech101", _R, _R),
    SuiteEntry("Flowers-102", "flowers102", "flowers102", _R, _R),
    SuiteEntry("MNIST", "mnist", "mnist", "acc1", "acc1"),
    SuiteEntry("FER2013", "fer2013", "fer2013", "acc1", None, "manual download"),
    SuiteEntry("STL-10", "stl10", "stl10", "acc1", "acc1"),
    SuiteEntry("EuroSAT", "eurosat", "eurosat", "acc1", "acc1"),
    SuiteEntry("RESISC45", None, "resisc45", "acc1", "acc1", _WDS),
    SuiteEntry("GTSRB", "gtsrb", "gtsrb", "acc1", "acc1"),
    SuiteEntry("KITTI (closest vehicle distance)", None, "kitti_distance", "acc1", "acc1", _WDS),
    SuiteEntry("Country211", "country211", "country211", "acc1", "acc1"),
    SuiteEntry("PatchCamelyon", "pcam", "pcam", "acc1", "acc1"),
    SuiteEntry("UCF101", None, "ucf101", "acc1", None, _WDS + " (video: one frame per clip)"),
    SuiteEntry(
        "Kinetics-700",
        None,
        "kinetics700",
        "mean of acc1 and acc5",
        None,
        _WDS + " (video; prompts.md lists fewer than 700 classes)",
    ),
    SuiteEntry("CLEVR Counts", "clevr_count", "clevr_count", "acc1", "acc1"),
    SuiteEntry("Hateful Memes", None, "hateful_memes", "roc_auc", None, _WDS + " (licence-gated download)"),
    SuiteEntry("Rendered SST2", "rendered_sst2", "rendered_sst2", "acc1", "acc1"),
    SuiteEntry("ImageNet", "imagenet", "imagenet", "acc1", "acc1", "manual download"),
    SuiteEntry("ImageNetV2", "imagenetv2", "imagenet", "acc1", "acc1", "manual download"),
    SuiteEntry("ImageNet-Sketch", "imagenet_sketch", "imagenet", "acc1", "acc1", "manual download"),
    SuiteEntry("ImageNet-A", "imagenet_a", "imagenet_a", "acc1", "acc1", "200 classes; manual download"),
    SuiteEntry("ImageNet-R", "imagenet_r", "imagenet_r", "acc1", "acc1", "200 classes; manual download"),
    SuiteEntry("ObjectNet", "objectnet", None, "acc1", "acc1", "113 classes; manual download"),
    SuiteEntry("SVHN", "svhn", "mnist", None, "acc1", "not in the CLIP paper; MNIST's prompts"),
)
