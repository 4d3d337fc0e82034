"""CaptionDataModule: an image-caption split served as two loaders, images and captions.

``test`` iterates :attr:`CaptionDataModule.streams` in order: dataloader 0 yields ``(image, index)``
batches of the split's images, dataloader 1 ``(tokens, index)`` batches of its captions; a task asks
:meth:`CaptionDataModule.stream` which one a batch came from. Indices are positions in the split
(:attr:`~CaptionDataModule.caption_image` maps each caption to its image), so what distributed
samplers repeat to pad the last batches can be dropped by index.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .datasets.captions import CAPTION_DATASETS, CaptionDataError, CaptionSet, read_caption_split
from .datasets.samples import ImageFiles
from .errors import ConfigError
from .models import tokenize

__all__ = ["CaptionDataModule", "CaptionTokens", "IndexedImages"]

FORMATS = ("auto", "karpathy", "clip_benchmark", "wds")


class IndexedImages(Dataset):
    """``(transform(image), index)`` of a dataset whose items are PIL images or ``(image, ...)`` tuples."""

    def __init__(self, images: Dataset, transform: Callable[[Any], torch.Tensor]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.images[index]
        return self.transform(item[0] if isinstance(item, tuple) else item), index


class CaptionTokens(Dataset):
    """``(tokens, caption index)``, shortest captions first (a text batch then runs over little padding)."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens
        lengths = (tokens != 0).sum(dim=1)
        self.order = torch.argsort(lengths, stable=True).tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = self.order[position]
        return self.tokens[index].long(), index


class CaptionDataModule(L.LightningDataModule):
    """Image-caption retrieval data (Flickr30k, Flickr8k, MSCOCO captions, CLIP_benchmark WebDatasets).

    Args:
        dataset: ``flickr30k``, ``flickr8k``, ``mscoco_captions``, or ``wds`` (a CLIP_benchmark
            retrieval WebDataset folder at ``root``).
        root: the dataset's folder: the annotation file beside the image folders.
        split: ``test`` (Karpathy's 1k Flickr / 5k COCO), ``val``, ``train`` (or ``restval``, in
            Karpathy's files).
        format: ``auto`` (Karpathy's ``dataset_*.json`` if present, else CLIP_benchmark's
            annotations; ``wds`` for ``dataset="wds"``), ``karpathy``, ``clip_benchmark`` or ``wds``.
        batch_size: images per batch and process.
        caption_batch_size: captions per batch and process (default ``batch_size``).
        num_workers: data-loading worker processes per loader and process.
        transform: the model's preprocess (the CLI links it from the model).
        image_root: where the images are, if not where the annotation file is.
        context_length: tokens per caption; longer captions are truncated (and counted, see
            :attr:`truncated`), as CLIP_benchmark's tokenizer does.
    """

    streams: tuple[str, ...] = ("images", "captions")

    def __init__(
        self,
        dataset: str = "flickr30k",
        root: str = "data",
        split: str = "test",
        format: str = "auto",
        batch_size: int = 64,
        caption_batch_size: int | None = None,
        num_workers: int = 4,
        transform: Callable[[Any], torch.Tensor] | None = None,
        image_root: str | None = None,
        context_length: int = 77,
    ) -> None:
        super().__init__()
        if dataset != "wds" and dataset not in CAPTION_DATASETS:
            raise ConfigError(
                f"unknown caption dataset {dataset!r}; choose from {[*CAPTION_DATASETS, 'wds']}"
            )
        if format not in FORMATS:
            raise ConfigError(f"unknown caption format {format!r}; choose from {list(FORMATS)}")
        if format != "auto" and (dataset == "wds") != (format == "wds"):
            raise ConfigError(
                f"format {format!r} does not go with dataset {dataset!r}: WebDatasets are dataset='wds'"
            )
        if batch_size < 1 or (caption_batch_size is not None and caption_batch_size < 1):
            raise ConfigError(f"batch sizes must be at least 1, got {batch_size} and {caption_batch_size}")
        self.dataset_name, self.root, self.split_name, self.format = dataset, root, split, format
        self.batch_size = batch_size
        self.caption_batch_size = caption_batch_size or batch_size
        self.num_workers = num_workers
        self.transform = transform
        self.image_root = image_root
        self.context_length = context_length
        self._data: CaptionSet | None = None
        self._images: Dataset | None = None
        self._tokens: torch.Tensor | None = None
        self._truncated: list[int] = []

    # ---- what a task reads --------------------------------------------------------------------

    @property
    def dataset(self) -> str:
        """The dataset's name in results (``wds/<folder name>`` for a WebDataset)."""
        return (
            f"wds/{os.path.basename(os.path.normpath(self.root))}"
            if self.dataset_name == "wds"
            else self.dataset_name
        )

    @property
    def classnames(self) -> list[str]:
        """None: captions are not classes (results.json's ``classnames`` stays empty)."""
        return []

    @property
    def skipped_images(self) -> list[tuple[str, str]]:
        """None: every image of a caption split is scored (an unreadable one stops the run)."""
        return []

    def stream(self, dataloader_idx: int) -> str:
        """What test dataloader ``dataloader_idx`` yields: ``images`` or ``captions``."""
        return self.streams[dataloader_idx]

    @property
    def data(self) -> CaptionSet:
        """The split's images, captions and caption -> image map (read on first use)."""
        if self._data is None:
            self._read()
        assert self._data is not None
        return self._data

    @property
    def captions(self) -> list[str]:
        """Every caption's text, in caption-index order."""
        return self.data.captions

    @property
    def caption_image(self) -> torch.Tensor:
        """The image index of each caption, ``[num_captions]`` int64."""
        return torch.tensor(self.data.caption_image, dtype=torch.long)

    @property
    def num_images(self) -> int:
        """How many images the split holds."""
        return len(self.data.images)

    @property
    def truncated(self) -> list[int]:
        """Indices of the captions longer than ``context_length`` tokens, which were truncated."""
        self.tokens  # noqa: B018  (tokenizing finds them)
        return list(self._truncated)

    @property
    def tokens(self) -> torch.Tensor:
        """Every caption's tokens ``[num_captions, context_length]`` (int32; built once)."""
        if self._tokens is None:
            self._tokens, self._truncated = _tokenize_all(self.captions, self.context_length)
            if self._truncated:
                rank_zero_warn(
                    f"{self.dataset}: {len(self._truncated)} caption(s) longer than {self.context_length} "
                    f"tokens were truncated (e.g. #{self._truncated[0]}); results.json lists them"
                )
        return self._tokens

    def image(self, index: int) -> Image.Image:
        """Image ``index`` as PIL RGB, untransformed (for figures)."""
        item = self._images_or_read()[index]
        return item[0] if isinstance(item, tuple) else item

    # ---- data ---------------------------------------------------------------------------------

    def _read(self) -> None:
        if self.dataset_name == "wds":
            self._data, self._images = _wds_split(self.root, self.split_name)
            return
        data = read_caption_split(self.dataset_name, self.root, self.split_name, self.format, self.image_root)
        self._data = data
        self._images = ImageFiles(data.images, [0] * len(data.images), None, split=self.split_name)

    def setup(self, stage: str | None = None) -> None:
        """Read the split, check its captions and tokenize them, before any image is encoded."""
        if self.transform is None:
            raise ConfigError(
                "CaptionDataModule has no transform: pass the model's preprocess, e.g. "
                "CaptionDataModule(..., transform=preprocess) (the clip-lightning CLI links it for you)"
            )
        _ = self.tokens

    def test_dataloader(self) -> list[DataLoader]:
        """Two loaders, in :attr:`streams` order: images, then captions."""
        assert self.transform is not None
        images = IndexedImages(self._images_or_read(), self.transform)
        captions = CaptionTokens(self.tokens)
        return [self._loader(images, self.batch_size), self._loader(captions, self.caption_batch_size)]

    def _images_or_read(self) -> Dataset:
        if self._images is None:
            self._read()
        assert self._images is not None
        return self._images

    def _loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )


def _tokenize_all(
    captions: list[str], context_length: int, chunk: int = 8192
) -> tuple[torch.Tensor, list[int]]:
    """Tokens of every caption (int32) and the indices of those that had to be truncated."""
    tokens = torch.empty(len(captions), context_length, dtype=torch.int32)
    truncated = []
    for start in range(0, len(captions), chunk):
        part = tokenize(captions[start : start + chunk], context_length, truncate=True)
        tokens[start : start + len(part)] = part.int()
        # A caption that fills the context ends exactly at the last position; only those can be cut.
        for row in torch.nonzero(part[:, -1] != 0).flatten().tolist():
            try:
                tokenize(captions[start + row], context_length)
            except RuntimeError:
                truncated.append(start + row)
    return tokens, truncated


def _wds_split(root: str, split: str) -> tuple[CaptionSet, Dataset]:
    """A CLIP_benchmark retrieval WebDataset's split: its captions, and its images as a dataset."""
    from .datasets import wds  # another module's reader of CLIP_benchmark's WebDataset folders

    kind = wds.wds_dataset_type(root)
    if kind != "retrieval":
        raise CaptionDataError(
            f"{root} is a {kind} WebDataset (dataset_type.txt); retrieval needs one whose "
            "dataset_type.txt says 'retrieval' (each sample an image and a .txt of captions)"
        )
    images = wds.wds_split(root, split)
    per_sample = images.captions
    if per_sample is None:
        raise CaptionDataError(
            f"{root} ({split}) has no .txt captions although dataset_type.txt says retrieval"
        )
    names = images.sample_names()  # SHARD.tar/KEY
    captions, owner = [], []
    for i, lines in enumerate(per_sample):
        captions += list(lines)
        owner += [i] * len(lines)
    return CaptionSet(names, captions, owner, os.path.join(root, split)), images
