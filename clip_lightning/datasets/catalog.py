"""The registered datasets: one entry each (adding a dataset is adding an entry here)."""

from __future__ import annotations

from . import torchvision_sets as tv
from .digits import digits
from .folders import folder_splits, imagefolder, imagenet
from .mnist import mnist
from .registry import SPLITS, DatasetInfo, register

__all__: list[str] = []

register(DatasetInfo(
    name="cifar10", load=tv.cifar10, splits=("train", "test"), prompts="cifar10", download=True,
    description="CIFAR-10: 32x32 photos of 10 object classes",
    source="https://www.cs.toronto.edu/~kriz/cifar.html",
))  # fmt: skip
register(DatasetInfo(
    name="cifar100", load=tv.cifar100, splits=("train", "test"), prompts="cifar100", download=True,
    description="CIFAR-100: 32x32 photos of 100 object classes (fine labels)",
    source="https://www.cs.toronto.edu/~kriz/cifar.html",
))  # fmt: skip
register(DatasetInfo(
    name="mnist", load=mnist, splits=("train", "test"), prompts="mnist", download=True,
    description="MNIST: 28x28 handwritten digits, read from LeCun's idx files",
    source="http://yann.lecun.com/exdb/mnist/",
))  # fmt: skip
register(DatasetInfo(
    name="stl10", load=tv.stl10, splits=("train", "test"), prompts="stl10", download=True,
    description="STL-10: 96x96 photos of 10 object classes (labelled images only)",
    source="https://cs.stanford.edu/~acoates/stl10/",
))  # fmt: skip
register(DatasetInfo(
    name="food101", load=tv.food101, splits=("train", "test"), prompts="food101", download=True,
    description="Food-101: photos of 101 dishes",
    source="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
))  # fmt: skip
register(DatasetInfo(
    name="flowers102", load=tv.flowers102, splits=SPLITS, prompts="flowers102", download=True,
    main_metric="mean_per_class_recall",  # the CLIP paper's (Table 9)
    description="Oxford Flowers-102: photos of 102 flower species",
    source="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
))  # fmt: skip
register(DatasetInfo(
    name="dtd", load=tv.dtd, splits=SPLITS, prompts="dtd", download=True,
    description="Describable Textures (partition 1): 47 texture classes",
    source="https://www.robots.ox.ac.uk/~vgg/data/dtd/",
))  # fmt: skip
register(DatasetInfo(
    name="oxford_pets", load=tv.oxford_pets, splits=("train", "test"), prompts="oxford_pets", download=True,
    main_metric="mean_per_class_recall",  # the CLIP paper's (Table 9)
    description="Oxford-IIIT Pets: 37 cat and dog breeds; train is the official trainval",
    source="https://www.robots.ox.ac.uk/~vgg/data/pets/",
))  # fmt: skip
register(DatasetInfo(
    name="imagenet", load=imagenet, splits=("train", "test"), prompts="imagenet",
    description="ImageNet (ILSVRC-2012) as `root/{train,val}/<wnid>/<image>`; test is the val folder",
    source="https://image-net.org/challenges/LSVRC/2012/",
))  # fmt: skip
register(DatasetInfo(
    name="eurosat", load=tv.eurosat, splits=(), prompts="eurosat", download=True,
    description="EuroSAT RGB: 64x64 Sentinel-2 satellite tiles of 10 land-use classes",
    source="https://github.com/phelber/EuroSAT",
))  # fmt: skip
register(DatasetInfo(
    name="digits", load=digits, splits=(), prompts="mnist",
    description="scikit-learn's bundled 8x8 handwritten digits (1,797 images; MNIST's prompts)",
    source="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
))  # fmt: skip
register(DatasetInfo(
    name="imagefolder", load=imagefolder, splits=SPLITS, splits_found=folder_splits, prompts=None,
    description="Your images as `root/{train,val,test}/<class>/<image>`; the splits are the folders there",
    source="--data.root",
))  # fmt: skip
