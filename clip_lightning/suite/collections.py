"""Named dataset collections a sweep takes (``--datasets clip_paper``) and their published columns.

A dataset in a sweep is a registry name (``cifar10``), or ``wds/<name>`` for a folder in
CLIP_benchmark's WebDataset layout (``wds/vtab/resisc45``: the name its published shards carry).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["COLLECTIONS", "REFERENCE_COLUMNS", "expand_datasets"]

# The CLIP paper's 27 (Table 9), in its order. Those torchvision does not provide come through
# CLIP_benchmark's WebDataset layout, under the names its published shards use.
CLIP_PAPER = (
    "food101", "cifar10", "cifar100", "wds/birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
    "voc2007", "dtd", "oxford_pets", "caltech101", "flowers102", "mnist", "fer2013", "stl10",
    "eurosat", "wds/vtab/resisc45", "gtsrb", "wds/vtab/kitti_closest_vehicle_distance", "country211",
    "pcam", "wds/ucf101", "wds/kinetics700", "clevr_count", "wds/hateful_memes", "rendered_sst2",
    "imagenet",
)  # fmt: skip

IMAGENET_SHIFTS = ("imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r", "objectnet")

# DataComp's 38 scored tasks as CLIP_benchmark publishes them (mlfoundations/datacomp tasklist.yml).
DATACOMP = (
    "wds/imagenet1k", "wds/imagenet_sketch", "wds/imagenetv2", "wds/imagenet-a", "wds/imagenet-o",
    "wds/imagenet-r", "wds/objectnet", "wds/vtab/caltech101", "wds/cars", "wds/vtab/cifar10",
    "wds/vtab/cifar100", "wds/vtab/clevr_count_all", "wds/vtab/clevr_closest_object_distance",
    "wds/country211", "wds/vtab/dtd", "wds/vtab/eurosat", "wds/fgvc_aircraft", "wds/food101",
    "wds/gtsrb", "wds/vtab/kitti_closest_vehicle_distance", "wds/mnist", "wds/vtab/flowers",
    "wds/vtab/pets", "wds/voc2007", "wds/vtab/pcam", "wds/renderedsst2", "wds/vtab/resisc45",
    "wds/stl10", "wds/sun397", "wds/vtab/svhn", "wds/flickr30k", "wds/mscoco_captions",
    "wds/winogavil", "wds/wilds/iwildcam", "wds/wilds/camelyon17", "wds/wilds/fmow",
    "wds/fairness/dollar_street", "wds/fairness/geode",
)  # fmt: skip

RETRIEVAL = ("flickr30k", "mscoco_captions")

COLLECTIONS = MappingProxyType(
    {
        "clip_paper": CLIP_PAPER,
        "imagenet_shifts": IMAGENET_SHIFTS,
        "datacomp": DATACOMP,
        "retrieval": RETRIEVAL,
    }
)

# Our dataset -> its column in the published table (reference/openai_models_38_datasets.csv).
_COLUMNS = {
    "ImageNet 1k": ("imagenet", "wds/imagenet1k"),
    "Caltech-101": ("caltech101", "wds/vtab/caltech101"),
    "CIFAR-10": ("cifar10", "wds/vtab/cifar10", "wds/cifar10"),
    "CIFAR-100": ("cifar100", "wds/vtab/cifar100"),
    "CLEVR Counts": ("clevr_count", "wds/vtab/clevr_count_all"),
    "CLEVR Distance": ("wds/vtab/clevr_closest_object_distance",),
    "Country211": ("country211", "wds/country211"),
    "Describable Textures": ("dtd", "wds/vtab/dtd"),
    "EuroSAT": ("eurosat", "wds/vtab/eurosat"),
    "FGVC Aircraft": ("fgvc_aircraft", "wds/fgvc_aircraft"),
    "Food-101": ("food101", "wds/food101"),
    "GTSRB": ("gtsrb", "wds/gtsrb"),
    "ImageNet Sketch": ("imagenet_sketch", "wds/imagenet_sketch"),
    "ImageNet v2": ("imagenetv2", "wds/imagenetv2"),
    "ImageNet-A": ("imagenet_a", "wds/imagenet-a"),
    "ImageNet-O": ("wds/imagenet-o",),
    "ImageNet-R": ("imagenet_r", "wds/imagenet-r"),
    "KITTI Vehicle Distance": ("wds/vtab/kitti_closest_vehicle_distance",),
    "MNIST": ("mnist", "wds/mnist"),
    "ObjectNet": ("objectnet", "wds/objectnet"),
    "Oxford Flowers-102": ("flowers102", "wds/vtab/flowers"),
    "Oxford-IIIT Pet": ("oxford_pets", "wds/vtab/pets"),
    "Pascal VOC 2007": ("voc2007", "wds/voc2007"),
    "PatchCamelyon": ("pcam", "wds/vtab/pcam"),
    "Rendered SST2": ("rendered_sst2", "wds/renderedsst2"),
    "RESISC45": ("wds/vtab/resisc45",),
    "Stanford Cars": ("stanford_cars", "wds/cars"),
    "STL-10": ("stl10", "wds/stl10"),
    "SUN397": ("sun397", "wds/sun397"),
    "SVHN": ("svhn", "wds/vtab/svhn"),
    "Flickr": ("flickr30k", "wds/flickr30k"),
    "MSCOCO": ("mscoco_captions", "wds/mscoco_captions"),
    "WinoGAViL": ("wds/winogavil",),
    "iWildCam": ("wds/wilds/iwildcam",),
    "Camelyon17": ("wds/wilds/camelyon17",),
    "FMoW": ("wds/wilds/fmow",),
    "Dollar Street": ("wds/fairness/dollar_street",),
    "GeoDE": ("wds/fairness/geode",),
}
REFERENCE_COLUMNS = MappingProxyType({name: column for column, names in _COLUMNS.items() for name in names})


def expand_datasets(specs: list[str]) -> list[str]:
    """Datasets and collection names -> datasets, in the order given, each once."""
    out: list[str] = []
    for spec in specs:
        for name in COLLECTIONS.get(spec, (spec,)):
            if name not in out:
                out.append(name)
    return out
