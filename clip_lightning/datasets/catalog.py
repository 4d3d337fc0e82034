"""The registered datasets: one entry each (adding a dataset is adding an entry here)."""

from __future__ import annotations

from . import imagenet_variants as iv
from . import manual_sets as ms
from . import torchvision_more as tvm
from . import torchvision_sets as tv
from .digits import digits
from .folders import folder_splits, imagefolder, imagenet
from .mnist import mnist
from .pcam import pcam
from .registry import SPLITS, DatasetInfo, register
from .voc import voc2007
from .wds import load_wds
from .wds_index import wds_is_multilabel, wds_prompts, wds_splits

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
# The CLIP paper's suite (Table 9) and ImageNet's shifts. main_metric is the paper's: accuracy,
# mean per-class recall for FGVC Aircraft, Pets, Caltech-101 and Flowers-102, 11-point mAP for VOC.
register(DatasetInfo(
    name="fgvc_aircraft", load=tvm.fgvc_aircraft, splits=SPLITS, prompts="fgvc_aircraft", download=True,
    main_metric="mean_per_class_recall",
    description="FGVC Aircraft 2013b: 100 aircraft variants",
    source="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/",
))  # fmt: skip
register(DatasetInfo(
    name="caltech101", load=tvm.caltech101, splits=("train", "test"), prompts="caltech101", download=True,
    main_metric="mean_per_class_recall",
    description="Caltech-101 with its background class (102); train: the first 30 images of each class "
    "in file order (the paper's protocol; its draw is unpublished), test: the rest",
    source="https://data.caltech.edu/records/mzrjq-6wc02",
))  # fmt: skip
register(DatasetInfo(
    name="sun397", load=ms.sun397, splits=("train", "test"), prompts="sun397", download=True,
    description="SUN397 scenes, official partition 01 (Training_01.txt / Testing_01.txt)",
    source="https://vision.princeton.edu/projects/2010/SUN/",
))  # fmt: skip
register(DatasetInfo(
    name="stanford_cars", load=ms.stanford_cars, splits=("train", "test"), prompts="stanford_cars",
    description="Stanford Cars: 196 car models (torchvision's layout; its download site is gone)",
    source="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
))  # fmt: skip
register(DatasetInfo(
    name="fer2013", load=ms.fer2013, splits=SPLITS, prompts="fer2013",
    description="FER2013 48x48 faces, 7 emotions; val/test: Kaggle's PublicTest/PrivateTest rows; "
    "classes with several names in prompts.md are ensembled over all of them",
    source="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge",
))  # fmt: skip
register(DatasetInfo(
    name="gtsrb", load=tvm.gtsrb, splits=("train", "test"), prompts="gtsrb", download=True,
    description="German Traffic Sign Recognition Benchmark: 43 sign classes",
    source="https://benchmark.ini.rub.de/gtsrb_dataset.html",
))  # fmt: skip
register(DatasetInfo(
    name="country211", load=tvm.country211, splits=SPLITS, prompts="country211", download=True,
    description="Country211: YFCC100M photos geolocated to 211 countries",
    source="https://github.com/openai/CLIP/blob/main/data/country211.md",
))  # fmt: skip
register(DatasetInfo(
    name="pcam", load=pcam, splits=SPLITS, prompts="pcam", download=True,
    description="PatchCamelyon: 96x96 lymph node patches, metastatic tissue or not (HDF5; needs h5py)",
    source="https://github.com/basveeling/pcam",
))  # fmt: skip
register(DatasetInfo(
    name="rendered_sst2", load=tvm.rendered_sst2, splits=SPLITS, prompts="rendered_sst2", download=True,
    description="Rendered SST2: movie-review sentences rendered as images, negative or positive",
    source="https://github.com/openai/CLIP/blob/main/data/rendered-sst2.md",
))  # fmt: skip
register(DatasetInfo(
    name="clevr_count", load=tvm.clevr_count, splits=("train", "test"), prompts="clevr_count", download=True,
    description="CLEVR object counts 3-10; test is CLEVR's val split (its test has no scenes), as VTAB",
    source="https://cs.stanford.edu/people/jcjohns/clevr/",
))  # fmt: skip
register(DatasetInfo(
    name="svhn", load=tvm.svhn, splits=("train", "test"), prompts="mnist", download=True,
    description="SVHN cropped house-number digits (not in the CLIP paper; MNIST's prompts, as prompts.md has none)",
    source="http://ufldl.stanford.edu/housenumbers/",
))  # fmt: skip
register(DatasetInfo(
    name="voc2007", load=voc2007, splits=SPLITS, prompts="voc2007", download=True,
    main_metric="mean_average_precision", multilabel=True,
    description="Pascal VOC 2007 as multi-label classification: each image's classes from its detection "
    "annotations (difficult objects included); 11-point mAP over full scores",
    source="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
))  # fmt: skip
register(DatasetInfo(
    name="imagenetv2", load=iv.imagenetv2, splits=("test",), prompts="imagenet",
    description="ImageNetV2 matched-frequency: 10,000 images in folders named by class index",
    source="https://github.com/modestyachts/ImageNetV2",
))  # fmt: skip
register(DatasetInfo(
    name="imagenet_sketch", load=iv.imagenet_sketch, splits=("test",), prompts="imagenet",
    description="ImageNet-Sketch: 50,889 sketches of the 1,000 classes, `sketch/<wnid>/`",
    source="https://github.com/HaohanWang/ImageNet-Sketch",
))  # fmt: skip
register(DatasetInfo(
    name="imagenet_a", load=iv.imagenet_a, splits=("test",), prompts="imagenet_a",
    description="ImageNet-A: natural adversarial examples of 200 classes; the classifier holds only those "
    "200 (the paper's restriction of the logits)",
    source="https://github.com/hendrycks/natural-adv-examples",
))  # fmt: skip
register(DatasetInfo(
    name="imagenet_r", load=iv.imagenet_r, splits=("test",), prompts="imagenet_r",
    description="ImageNet-R: renditions of 200 classes; the classifier holds only those 200",
    source="https://github.com/hendrycks/imagenet-r",
))  # fmt: skip
register(DatasetInfo(
    name="objectnet", load=iv.objectnet, splits=("test",), prompts=None, prompts_from=iv.objectnet_prompts,
    description="ObjectNet's 113 classes that map to ImageNet (names from its mappings, ImageNet's templates), "
    "as CLIP_benchmark and DataComp score it",
    source="https://objectnet.dev/",
))  # fmt: skip
register(DatasetInfo(
    name="wds", load=load_wds, splits=("train", "test"), splits_found=wds_splits, prompts=None,
    prompts_from=wds_prompts, multilabel_from=wds_is_multilabel,
    description="CLIP_benchmark's WebDataset folders: `root/{train,test}/{nshards.txt,0.tar,...}`, "
    "`root/classnames.txt`, `root/zeroshot_classification_templates.txt`, `root/dataset_type.txt`; "
    "class names, templates and kind (classification, multilabel) from the folder",
    source="--data.root",
))  # fmt: skip
