"""Datasets by name: one registry entry each, split carving, one module per source family.

Everything about a dataset is its :class:`DatasetInfo` in :mod:`.catalog`; adding a dataset is
adding an entry there (and a loader in a family module when its source is new).
"""

from __future__ import annotations

from ..errors import DatasetNotFoundError
from . import catalog  # noqa: F401  (registers the datasets)
from .checks import ImageCheck
from .digits import DigitsDataset
from .folders import aligned_split, class_folders, folder_images
from .images import IMAGE_EXTENSIONS, find_unreadable, image_problem, read_rgb, to_rgb
from .mnist import MNISTFiles
from .prompts import (
    DEFAULT_TEMPLATES,
    ClassName,
    class_names_of,
    dataset_prompts,
    known_prompt_datasets,
    read_list,
)
from .registry import DATASETS, SPLITS, DatasetInfo, Loader, get_dataset_info, register, unregister
from .samples import (
    ImageArrays,
    ImageFiles,
    IndexedDataset,
    LabeledImages,
    MultiLabelImageFiles,
    dataset_fingerprint,
    dataset_targets,
    folder_classes,
)
from .splits import TEST_FRACTION, build_split, stratified_split

__all__ = [
    "DATASETS",
    "DEFAULT_TEMPLATES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "TEST_FRACTION",
    "ClassName",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DigitsDataset",
    "ImageArrays",
    "ImageCheck",
    "ImageFiles",
    "IndexedDataset",
    "LabeledImages",
    "Loader",
    "MNISTFiles",
    "MultiLabelImageFiles",
    "aligned_split",
    "build_split",
    "class_folders",
    "class_names_of",
    "dataset_fingerprint",
    "dataset_prompts",
    "dataset_targets",
    "find_unreadable",
    "folder_classes",
    "folder_images",
    "get_dataset_info",
    "image_problem",
    "known_prompt_datasets",
    "read_list",
    "read_rgb",
    "register",
    "stratified_split",
    "to_rgb",
    "unregister",
]
