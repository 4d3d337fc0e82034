"""Train/val/test splits of any registered dataset: official ones, or carved out, seeded."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

from ..errors import ConfigError
from .registry import SPLITS, DatasetInfo, get_dataset_info
from .samples import LabeledImages, dataset_targets

__all__ = ["TEST_FRACTION", "Check", "build_split", "stratified_split"]

# Held-out share of the whole set for datasets shipped without any split.
TEST_FRACTION = 0.2

# (an official split as loaded, its name) -> the split to use (e.g. without unreadable files).
Check = Callable[[LabeledImages, str], LabeledImages]


def stratified_split(targets: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (rest, held-out) with ``fraction`` of every class held out, seeded."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(targets)
    held: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_held = round(len(members) * fraction)
        if len(members) > 1:
            n_held = min(max(n_held, 1), len(members) - 1)
        held.extend(members[:n_held].tolist())
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def _load(info: DatasetInfo, root: str, split: str, download: bool, check: Check | None) -> LabeledImages:
    data = info.load(root, split, download)
    return check(data, split) if check is not None else data


def build_split(
    name: str,
    root: str,
    split: str,
    download: bool,
    val_fraction: float,
    seed: int,
    *,
    check: Check | None = None,
) -> Dataset:
    """The ``split`` ("train", "val" or "test") of dataset ``name`` (untransformed samples).

    Missing official splits are carved out with seeded stratified splits: "test" as 20% of a
    dataset that has no split at all, "val" as ``val_fraction`` of the official train split
    (and then "train" is the rest, so train + val is always the whole official train split).
    ``check`` sees every official split as loaded, before any carving (see ``ImageCheck``).
    """
    info = get_dataset_info(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    official = info.official_splits(root)
    if split in official and (split == "test" or "val" in official):
        return _load(info, root, split, download, check)
    if not info.splits:  # no split at all: test is held out of the whole, train and val share the rest
        whole = _load(info, root, "all", download, check)
        rest, test = stratified_split(dataset_targets(whole), TEST_FRACTION, seed)
        if split == "test":
            return Subset(whole, test)
        full_train: Dataset = Subset(whole, rest)
    elif split == "test":
        # Splits that are not all there: the loader says which is missing and what to pass.
        return _load(info, root, "test", download, check)
    else:
        full_train = _load(info, root, "train", download, check)
    train_idx, val_idx = stratified_split(dataset_targets(full_train), val_fraction, seed)
    return Subset(full_train, val_idx if split == "val" else train_idx)
