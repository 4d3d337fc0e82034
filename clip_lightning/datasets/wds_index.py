"""CLIP_benchmark's WebDataset folders: what the folder says about itself, and an index of its shards.

The layout CLIP_benchmark writes and reads (``build_wds_dataset``)::

    root/{train,test}/nshards.txt     how many shards the split has
    root/{train,test}/0.tar, 1.tar, ...
    root/classnames.txt               one class name per line
    root/zeroshot_classification_templates.txt   one template per line, placeholder {c}
    root/dataset_type.txt             retrieval or multilabel (absent: classification)

A split's shards are indexed once, when it is built: every member's name and data offset (through
``tarfile``), grouped into samples by webdataset's own ``group_by_keys`` (its key and extension
rule, its rule for skipped metadata members), so a sample here is a sample of
``webdataset.WebDataset`` over the same shards, in the same order: shards in numeric order,
samples in tar order. Sample ``i`` of a split is the ``i``-th of that order.
"""

from __future__ import annotations

import inspect
import os
import re
import string
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from webdataset.tariterators import group_by_keys, meta_prefix, meta_suffix, tar_file_iterator

from ..errors import ConfigError, DatasetNotFoundError, WebDatasetError

__all__ = [
    "DATASET_TYPES",
    "IMAGE_EXTS",
    "Member",
    "ShardIndex",
    "WdsSample",
    "convert_template",
    "index_split",
    "shard_paths",
    "wds_classnames",
    "wds_dataset_type",
    "wds_is_multilabel",
    "wds_prompts",
    "wds_splits",
    "wds_templates",
]

DATASET_TYPES = ("classification", "multilabel", "retrieval")
# The image a sample is read from: the first of these it has (CLIP_benchmark's to_tuple order).
IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
LABEL_EXT = {"classification": "cls", "multilabel": "npy", "retrieval": "txt"}
# Members webdataset's reader skips before grouping (its own default, so the two never disagree).
_SKIP_META = re.compile(inspect.signature(tar_file_iterator).parameters["skip_meta"].default)
_LAYOUT = "root/{train,test}/{nshards.txt,0.tar,1.tar,...}, root/classnames.txt (CLIP_benchmark's layout)"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def wds_dataset_type(root: str) -> str:
    """``classification``, ``multilabel`` or ``retrieval``, from ``root/dataset_type.txt`` (absent: classification)."""
    text = _read_text(os.path.join(root, "dataset_type.txt"))
    kind = text.strip().lower() if text is not None else "classification"
    if kind not in DATASET_TYPES:
        raise ConfigError(
            f"wds: {os.path.join(root, 'dataset_type.txt')} says {kind!r}; it must say one of "
            f"{list(DATASET_TYPES)} (or be absent for classification)"
        )
    return kind


def wds_is_multilabel(root: str) -> bool:
    """Whether the folder holds a multi-label set (``dataset_type.txt`` says ``multilabel``)."""
    return wds_dataset_type(root) == "multilabel"


def wds_classnames(root: str) -> list[str] | None:
    """``root/classnames.txt``, one name per line (None when absent); an empty line is an error."""
    path = os.path.join(root, "classnames.txt")
    text = _read_text(path)
    if text is None:
        return None
    names = [line.strip() for line in text.splitlines()]  # every line is a class: labels index them
    empty = [n for n, name in enumerate(names, 1) if not name]
    if empty or not names:
        raise WebDatasetError(
            f"wds: {path} has {'an empty line ' + str(empty[0]) if empty else 'no class names'}; "
            "write one class name per line, in label order (label 0 first)"
        )
    return names


def convert_template(template: str, where: str = "template") -> str:
    """CLIP_benchmark's template (``str.format`` with ``{c}``) as ours (``{}``): the same prompts.

    Literal braces (``{{``, ``}}``) stay literal; a conversion or format spec is kept (``{c!r}``).
    Another field name is an error naming ``where``: CLIP_benchmark could not format it either.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:  # a lone brace
        raise ConfigError(f"{where}: {template!r} is not a valid format string ({err})") from None
    out = []
    for literal, field, spec, conversion in parts:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if field != "c":
            raise ConfigError(f"{where}: {template!r} uses {{{field}}}; the class name placeholder is {{c}}")
        out.append("{" + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def wds_templates(root: str) -> list[str] | None:
    """``root/zeroshot_classification_templates.txt`` converted to ``{}`` (None when absent); blank lines skipped."""
    path = os.path.join(root, "zeroshot_classification_templates.txt")
    text = _read_text(path)
    if text is None:
        return None
    return [convert_template(line.strip(), path) for line in text.splitlines() if line.strip()]


def wds_prompts(root: str) -> tuple[list[str] | None, list[str] | None]:
    """``(class names, templates)`` the folder holds; None for a file it lacks."""
    return wds_classnames(root), wds_templates(root)


def wds_splits(root: str) -> tuple[str, ...]:
    """Which of train and test have an ``nshards.txt`` under ``root``."""
    return tuple(s for s in ("train", "test") if os.path.isfile(os.path.join(root, s, "nshards.txt")))


def shard_paths(root: str, split: str) -> list[str]:
    """``root/split/0.tar ...`` as many as ``nshards.txt`` says; one error naming every missing shard."""
    count_file = os.path.join(root, split, "nshards.txt")
    text = _read_text(count_file)
    if text is None:
        found = f" (it has {list(wds_splits(root))})" if os.path.isdir(root) else ""
        raise DatasetNotFoundError(
            f"wds: no {count_file}: {root} has no {split} split{found}; pass --data.root with the layout {_LAYOUT}"
        )
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise WebDatasetError(
            f"wds: {count_file} holds {text.strip()[:40]!r}, not a number of shards (1 or more)"
        )
    paths = [os.path.join(root, split, f"{n}.tar") for n in range(count)]
    missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise WebDatasetError(
            f"wds: {count_file} says {count} shards but {len(missing)} of them are missing from "
            f"{os.path.join(root, split)}: {missing[:8]}{more}; fetch them again, or correct nshards.txt"
        )
    return paths


@dataclass(frozen=True)
class Member:
    """Where a tar member's bytes are in its shard."""

    offset: int
    size: int


@dataclass(frozen=True)
class WdsSample:
    """One sample: its shard (position in the split's shards), key, image member and label bytes."""

    shard: int
    key: str
    image: Member
    label: bytes


@dataclass(frozen=True)
class ShardIndex:
    """A split's shards (paths) and samples, in webdataset's order."""

    shards: list[str]
    samples: list[WdsSample]

    def name(self, i: int) -> str:
        """Sample ``i`` as ``SHARD.tar/KEY``: what messages and the skip list call it."""
        sample = self.samples[i]
        return f"{self.shards[sample.shard]}/{sample.key}"

    def subset(self, keep: list[int]) -> ShardIndex:
        """The samples at ``keep``, in that order."""
        return ShardIndex(self.shards, [self.samples[i] for i in keep])


def _members(path: str) -> Iterator[dict[str, Any]]:
    """Regular members of the tar at ``path`` as webdataset's reader yields them, with offsets for data."""
    try:
        with tarfile.open(path, "r:") as tar:  # uncompressed: member data must sit at a file offset
            for info in tar:
                name = info.name
                if not info.isreg() or (
                    "/" not in name and name.startswith(meta_prefix) and name.endswith(meta_suffix)
                ):
                    continue
                if _SKIP_META.match(name):
                    continue
                yield {"fname": name, "data": Member(info.offset_data, info.size), "__url__": path}
    except (tarfile.TarError, EOFError) as err:
        raise WebDatasetError(f"wds: cannot read shard {path} as an uncompressed tar ({err})") from None


def _index_shard(path: str, shard: int, label_ext: str) -> list[WdsSample]:
    samples = []
    with open(path, "rb") as f:
        try:
            grouped = list(group_by_keys(_members(path)))
        except ValueError as err:  # two members with the same key and extension in a row
            raise WebDatasetError(f"wds: shard {path}: {err.args[0]}") from None
        for group in grouped:
            key = group["__key__"]
            exts = sorted(k for k in group if not k.startswith("__"))
            image = next((group[e] for e in IMAGE_EXTS if e in group), None)
            label_name = f".{label_ext} {'captions' if label_ext == 'txt' else 'label'}"
            what = "image (.webp, .png, .jpg or .jpeg)" if image is None else None
            if what is None and label_ext not in group:
                what = label_name
            if image is None or what is not None:
                raise WebDatasetError(
                    f"wds: sample {key!r} of {path} has no {what} (it has {['.' + e for e in exts]}); "
                    f"every sample of this set needs an image and its {label_name}"
                )
            label: Member = group[label_ext]
            f.seek(label.offset)
            samples.append(WdsSample(shard, key, image, f.read(label.size)))
    return samples


def index_split(root: str, split: str, kind: str) -> ShardIndex:
    """Index split ``split`` of the folder at ``root`` (a ``kind`` set: see :data:`DATASET_TYPES`)."""
    shards = shard_paths(root, split)
    samples = [s for n, path in enumerate(shards) for s in _index_shard(path, n, LABEL_EXT[kind])]
    if not samples:
        raise WebDatasetError(f"wds: the {len(shards)} shards of {os.path.join(root, split)} hold no samples")
    return ShardIndex(shards, samples)
