"""Datasets by name: one registry entry each, split carving, one module per source family.

Everything about a dataset is its :class:`DatasetInfo` in :mod:`.catalog`; adding a dataset is
adding an entry there (and a loader in a family module when its source is new).
"""

from __future__ import annotations

from ..errors import DatasetNotFoundError
from . import catalog  # noqa: F401  (registers the datasets)
from .digits import DigitsDataset
from .mnist import MNISTFiles
from .prompts import DEFAULT_TEMPLATES, dataset_prompts, known_prompt_datasets, read_list
from .registry import DATASETS, SPLITS, DatasetInfo, Loader, get_dataset_info, register, unregister
from .samples import (
    ImageArrays,
    ImageFiles,
    IndexedDataset,
    LabeledImages,
    dataset_fingerprint,
    dataset_targets,
    folder_classes,
)
from .splits import TEST_FRACTION, build_split, stratified_split

__all__ = [
    "DATASETS",
    "DEFAULT_TEMPLATES",
    "SPLITS",
    "TEST_FRACTION",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DigitsDataset",
    "ImageArrays",
    "ImageFiles",
    "IndexedDataset",
    "LabeledImages",
    "Loader",
    "MNISTFiles",
    "build_split",
    "dataset_fingerprint",
    "dataset_prompts",
    "dataset_targets",
    "folder_classes",
    "get_dataset_info",
    "known_prompt_datasets",
    "read_list",
    "register",
    "stratified_split",
    "unregister",
]
