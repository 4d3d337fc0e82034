"""CLIP_benchmark's WebDataset folders as map-style datasets (``--data.dataset wds``).

A split is indexed once when it is built (:mod:`.wds_index`); reading sample ``i`` seeks to its
image in its shard. Being map-style, a split goes through the same samplers, deduplication by
index, feature cache and ``predict`` as every other dataset, so any number of processes count
every sample exactly once. Images are decoded as image files are (:func:`~.images.to_rgb`).
"""

from __future__ import annotations

import copy
import io
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import ConfigError, UnreadableImageError, WebDatasetError
from .images import to_rgb
from .samples import LabeledImages
from .wds_index import Member, ShardIndex, index_split, wds_classnames, wds_dataset_type

__all__ = ["WdsCaptioned", "WdsLabeled", "WdsSamples", "load_wds", "wds_dataset_type", "wds_split"]

_S = TypeVar("_S", bound="WdsSamples")

# Open shards kept per process: readers go through a split mostly in order, one shard at a time.
_OPEN_SHARDS = 4


class _MemberView(io.RawIOBase):
    """A read-only file over one tar member, so Pillow reads a header without the whole image."""

    def __init__(self, f: IO[bytes], member: Member) -> None:
        super().__init__()
        self._f, self._member, self._pos = f, member, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._member.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._member.size - self._pos))
        self._f.seek(self._member.offset + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _problem(f: IO[bytes], member: Member, decode: bool) -> str | None:
    """Why the image ``member`` cannot be read, in one line (as :func:`~.images.image_problem` words it)."""
    if member.size == 0:
        return "an empty file (0 bytes)"
    try:
        image = Image.open(io.BufferedReader(_MemberView(f, member)))
        if decode:
            to_rgb(image)
    except UnidentifiedImageError:
        return "not an image file Pillow recognises"
    except Exception as err:  # any decoder error: unreadable
        text = (str(err).splitlines() or [""])[0][:200]
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return None


class WdsSamples(Dataset):
    """The images of a split of a WebDataset folder; subclasses add what a sample carries.

    Files are opened by the process that reads (never inherited across ``fork``: processes
    sharing one file position would read each other's samples).
    """

    def __init__(self, index: ShardIndex, split: str | None = None) -> None:
        self.index = index
        self.split = split
        self.captions: list[list[str]] | None = None  # per sample, for retrieval sets
        self._files: dict[int, IO[bytes]] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**vars(self), "_files": {}}

    def __len__(self) -> int:
        return len(self.index.samples)

    def _file(self, shard: int) -> IO[bytes]:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            if len(self._files) >= _OPEN_SHARDS:
                self._files.pop(next(iter(self._files))).close()
            f = self._files[shard] = open(self.index.shards[shard], "rb")  # noqa: SIM115 (kept open)
        return f

    def image(self, i: int) -> Image.Image:
        """Sample ``i``'s image as 8-bit RGB; UnreadableImageError naming shard and key."""
        sample = self.index.samples[i]
        f = self._file(sample.shard)
        try:
            f.seek(sample.image.offset)
            return to_rgb(Image.open(io.BytesIO(f.read(sample.image.size))))
        except Exception as err:  # any decoder error: name the sample instead of a Pillow traceback
            raise UnreadableImageError.naming(self.index.name(i), self.split, err) from None

    def sample_names(self) -> list[str]:
        """Every sample as ``SHARD.tar/KEY``, in index order."""
        return [self.index.name(i) for i in range(len(self))]

    def identity(self) -> Iterator[bytes]:
        """Byte strings that change whenever the shards (size, mtime), the samples or labels change."""
        for path in self.index.shards:
            st = os.stat(path)
            yield f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode()
        for sample in self.index.samples:
            yield f"{sample.shard}|{sample.key}|{sample.image.offset}|".encode() + sample.label + b"\n"

    def unreadable(self, decode: bool, workers: int = 1) -> list[tuple[str, str]]:
        """``(name, reason)`` of every sample whose image cannot be read, in index order.

        ``decode`` reads every pixel (finds truncated images); otherwise only headers are read.
        ``workers`` threads check shards in parallel, each with its own file.
        """
        by_shard: dict[int, list[int]] = defaultdict(list)
        for i, sample in enumerate(self.index.samples):
            by_shard[sample.shard].append(i)

        def check(shard: int) -> list[tuple[int, str]]:
            with open(self.index.shards[shard], "rb") as f:
                found = [(i, _problem(f, self.index.samples[i].image, decode)) for i in by_shard[shard]]
            return [(i, why) for i, why in found if why is not None]

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            bad = sorted(item for found in pool.map(check, sorted(by_shard)) for item in found)
        return [(self.index.name(i), why) for i, why in bad]

    def without(self: _S, names: set[str]) -> _S:
        """The same split without the samples named in ``names`` (see :meth:`sample_names`)."""
        kept = copy.copy(self)
        kept._select([i for i, name in enumerate(self.sample_names()) if name not in names])
        return kept

    def _select(self, keep: list[int]) -> None:
        # Keep only the samples at ``keep`` (on a copy: see without); subclasses subset their labels too.
        self.index = self.index.subset(keep)
        self.captions = [self.captions[i] for i in keep] if self.captions is not None else None
        self._files = {}


class WdsLabeled(WdsSamples, LabeledImages):
    """A classification or multi-label split: samples ``(image, label)``.

    A label is the ``.cls`` class index, or for a multi-label set the ``.npy`` multi-hot vector
    (0/1 per class) as a float32 tensor, as :class:`~.samples.MultiLabelImageFiles` gives it
    (``multi_hot`` holds them all). ``targets`` are the class indices; a multi-label set has none
    (reading them is a ConfigError: it cannot be split by class or probed). ``classes`` are
    ``classnames.txt``'s names (None when it is absent).
    """

    def __init__(
        self, index: ShardIndex, classes: list[str] | None, split: str | None = None, multilabel: bool = False
    ) -> None:
        WdsSamples.__init__(self, index, split)
        self.classes = classes
        self.multilabel = multilabel
        self.multi_hot: np.ndarray | None = None
        if multilabel:
            vectors = [self._vector(i) for i in range(len(index.samples))]
            expected = len(classes) if classes is not None else vectors[0].size
            for i, vector in enumerate(vectors):
                if vector.ndim != 1 or vector.size != expected:
                    raise self._bad_label(
                        i, f"has shape {vector.shape}, not ({expected},): one entry per class"
                    )
                if not np.isin(vector, (0, 1)).all():
                    raise self._bad_label(i, "holds values other than 0 and 1: it must be multi-hot")
            self.multi_hot = np.stack(vectors).astype(np.float32)
            self._targets: list[int] = []
        else:
            self.targets = [self._target(i) for i in range(len(index.samples))]

    @property
    def targets(self) -> list[int]:
        """Each sample's class index (not for multi-label sets: ConfigError)."""
        if self.multi_hot is not None:
            raise ConfigError(
                "a multi-label dataset (several classes per image) has no class index per sample: it cannot "
                "be split by class or fitted by a linear probe; evaluate its official splits zero-shot"
            )
        return self._targets

    @targets.setter
    def targets(self, targets: list[int]) -> None:
        self._targets = targets

    def _bad_label(self, i: int, what: str) -> WebDatasetError:
        ext = "npy" if self.multilabel else "cls"
        return WebDatasetError(f"wds: the .{ext} label of {self.index.name(i)} {what}")

    def _target(self, i: int) -> int:
        raw = self.index.samples[i].label
        try:
            target = int(raw.decode("utf-8").strip())
        except (UnicodeDecodeError, ValueError):
            raise self._bad_label(i, f"is {raw[:40]!r}, not a class index") from None
        if target < 0 or (self.classes is not None and target >= len(self.classes)):
            count = f"the {len(self.classes)} classes of classnames.txt" if self.classes else "classes"
            raise self._bad_label(i, f"is {target}, outside {count} (labels count from 0)")
        return target

    def _vector(self, i: int) -> np.ndarray:
        try:
            vector = np.load(io.BytesIO(self.index.samples[i].label), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise self._bad_label(i, f"is not a NumPy .npy array ({err})") from None
        return vector

    def __getitem__(self, i: int) -> tuple[Image.Image, Any]:
        label = torch.from_numpy(self.multi_hot[i]) if self.multi_hot is not None else self._targets[i]
        return self.image(i), label

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self._targets = [self._targets[i] for i in keep] if self._targets else []
        self.multi_hot = self.multi_hot[keep] if self.multi_hot is not None else None


class WdsCaptioned(WdsSamples):
    """A retrieval split: sample ``i`` is its image; ``captions[i]`` its ``.txt`` lines."""

    def __init__(self, index: ShardIndex, split: str | None = None) -> None:
        super().__init__(index, split)
        captions = []
        for i, sample in enumerate(index.samples):
            try:
                captions.append(sample.label.decode("utf-8").splitlines())  # CLIP_benchmark's str.splitlines
            except UnicodeDecodeError:
                raise WebDatasetError(f"wds: the captions of {index.name(i)} are not UTF-8 text") from None
        self.captions = captions

    def __getitem__(self, i: int) -> Image.Image:
        return self.image(i)


def wds_split(root: str, split: str) -> WdsLabeled | WdsCaptioned:
    """Split ``split`` ("train" or "test") of the WebDataset folder at ``root``, indexed.

    Retrieval sets give a :class:`WdsCaptioned` (items: images; ``captions``), the others a
    :class:`WdsLabeled` (items: ``(image, label)``; ``captions`` None).
    """
    kind = wds_dataset_type(root)
    index = index_split(root, split, kind)
    if kind == "retrieval":
        return WdsCaptioned(index, split)
    return WdsLabeled(index, wds_classnames(root), split, multilabel=kind == "multilabel")


def load_wds(root: str, split: str, download: bool) -> LabeledImages:
    """The registry's loader: a classification or multi-label split; nothing to download."""
    if wds_dataset_type(root) == "retrieval":  # said before any shard is indexed
        raise ConfigError(
            f"wds: {root} holds a retrieval set (dataset_type.txt says retrieval): images with captions, "
            "no classes; evaluate it with the retrieval task, not zero-shot classification"
        )
    data = wds_split(root, split)
    assert isinstance(data, WdsLabeled)
    return data
