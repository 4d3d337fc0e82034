"""CLIPDataModule: classification datasets with the CLIP transform, split and batched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from .datasets import (
    DEFAULT_TEMPLATES,
    SPLITS,
    DatasetInfo,
    ImageCheck,
    IndexedDataset,
    build_split,
    dataset_prompts,
    folder_classes,
    get_dataset_info,
    read_list,
)
from .distributed import in_process_group, raise_on_every_rank
from .errors import ConfigError, UserError

__all__ = ["CLIPDataModule", "clip_datamodule"]


def clip_datamodule(trainer: L.Trainer) -> CLIPDataModule:
    """The trainer's CLIPDataModule, or a clear error when it runs without one."""
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, CLIPDataModule):
        raise ConfigError(
            f"clip_lightning needs a CLIPDataModule (class names, transform), got {type(datamodule).__name__}"
        )
    return datamodule


class CLIPDataModule(L.LightningDataModule):
    """A classification dataset as CLIP sees it; batches are ``(image, label, index)``.

    Args:
        dataset: a name in ``clip_lightning.datasets.DATASETS`` (docs/datasets.md lists them;
            ``imagefolder`` reads ``root/{train,val,test}/<class>/<image>``).
        root: where the data is (or is downloaded to).
        download: fetch torchvision datasets that are missing (needs network).
        batch_size: images per batch and process.
        num_workers: data-loading worker processes per process.
        classnames: names used in prompts: None (CLIP's curated names for named datasets, the
            folder names with ``_`` as spaces for image folders), a list, or a file.
        templates: the dataset's default prompt templates (same forms); the evaluator may override.
        val_fraction: share of the official train split held out as "val" when there is none.
        split_seed: seed of every carved-out split.
        transform: the model's preprocess; the CLI links it from the model, so it cannot
            disagree with the model's resolution.
        test_splits: splits iterated by ``test`` (default ``["test"]``); see :meth:`set_test_splits`.
        skip_bad_images: leave out image files that cannot be decoded (every image is decoded
            once when its split is built to find them, the same on every process), warn, and list
            them in :attr:`skipped_images`; otherwise an unreadable file is an error naming it.
        verify: decode every image of each split when it is built, before any work, and list
            every unreadable one in the error; otherwise only file headers are checked up front.
    """

    def __init__(
        self,
        dataset: str = "cifar10",
        root: str = "data",
        download: bool = False,
        batch_size: int = 64,
        num_workers: int = 4,
        classnames: str | list[str] | None = None,
        templates: str | list[str] | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        transform: Callable[[Any], torch.Tensor] | None = None,
        test_splits: list[str] | None = None,
        skip_bad_images: bool = False,
        verify: bool = False,
    ) -> None:
        super().__init__()
        self._info = get_dataset_info(dataset)  # ConfigError naming the choices when unknown
        self._resolved_info: DatasetInfo | None = None
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset = dataset
        self.root = root
        self.download = download
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.classnames_spec = classnames
        self.templates_spec = templates
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.transform = transform
        self._test_splits: list[str] = []
        self.set_test_splits(list(test_splits or ["test"]))
        self._splits: dict[str, Dataset] = {}
        self._classnames: list[str] | None = None
        self._prepare_error: UserError | None = None
        self.skip_bad_images = skip_bad_images
        self.verify = verify
        self._check = ImageCheck(dataset, decode=verify, skip=skip_bad_images, workers=max(1, num_workers))
        self._warned_skips = 0

    # ---- the dataset --------------------------------------------------------------------------

    @property
    def info(self) -> DatasetInfo:
        """The dataset's registry entry, as the data under ``root`` describes itself (a ``wds``
        folder whose dataset_type.txt says multilabel: ``multilabel`` True; see ``DatasetInfo.for_root``)."""
        if self._resolved_info is None:
            self._resolved_info = self._info.for_root(self.root)
        return self._resolved_info

    @property
    def multilabel(self) -> bool:
        """Whether labels are multi-hot vectors over the classes (``info.multilabel``)."""
        return self.info.multilabel

    @property
    def main_metric(self) -> str:
        """The metric the dataset is reported with (``acc1``, ``mean_per_class_recall``, ...)."""
        return self.info.main_metric

    @property
    def test_splits(self) -> list[str]:
        """The splits ``test`` iterates, in dataloader order (a copy; change it with set_test_splits)."""
        return list(self._test_splits)

    def set_test_splits(self, splits: list[str]) -> None:
        """Make ``test`` iterate ``splits`` ("train", "val", "test"), in this order.

        Dataloader ``i`` of a test run is ``splits[i]``; a LinearProbe calls this in its setup
        to extract train and val features in the same run. Raises ConfigError for an unknown
        name or an empty list; splits are built when first needed.
        """
        if not splits:
            raise ConfigError(f"test_splits is empty; choose from {list(SPLITS)}")
        for split in splits:
            if split not in SPLITS:
                raise ConfigError(f"unknown split {split!r} in test_splits; choose from {list(SPLITS)}")
        self._test_splits = list(splits)

    # ---- data ---------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """With ``download``, fetch the train and test data (Lightning runs this on one process per node)."""
        if not self.download:
            return
        try:
            for split in ("train", "test"):
                build_split(self.dataset, self.root, split, True, self.val_fraction, self.split_seed)
        except UserError as err:
            if not in_process_group():
                raise
            self._prepare_error = err  # raised in setup, on every process (the others never ran this)

    def split(self, name: str) -> Dataset:
        """The untransformed samples of split ``name`` (built and checked once; see ``skip_bad_images``)."""
        self._build([name])
        return self._splits[name]

    def _build(self, names: list[str]) -> None:
        # Every split first, then the check: --data.verify lists the bad files of all of them.
        for name in names:
            if name not in self._splits:
                seed, fraction = self.split_seed, self.val_fraction
                self._splits[name] = build_split(
                    self.dataset, self.root, name, False, fraction, seed, check=self._check
                )
        self._check.raise_unreadable()
        skipped = self._check.skipped
        if len(skipped) > self._warned_skips:
            new = skipped[self._warned_skips :]
            self._warned_skips = len(skipped)
            rank_zero_warn(
                f"{self.dataset}: skipped {len(new)} unreadable image{'s' if len(new) > 1 else ''} "
                f"(--data.skip_bad_images true), e.g. {new[0][1]} ({new[0][0]}); "
                f"{len(skipped)} skipped in all (CLIPDataModule.skipped_images)"
            )

    @property
    def skipped_images(self) -> list[tuple[str, str]]:
        """``(split, path)`` of every unreadable image left out so far (official split names, load order).

        Empty unless ``skip_bad_images``; complete for the splits built (``setup`` builds those a run reads).
        """
        return self._check.skipped

    def setup(self, stage: str | None = None) -> None:
        """Build the splits ``stage`` reads and check the class names; a failed download stops every rank."""
        if self.download:  # the same on every process, so all of them join this collective
            error, self._prepare_error = self._prepare_error, None
            raise_on_every_rank(error)
        if self.transform is None:
            raise ConfigError(
                "CLIPDataModule has no transform: pass the model's preprocess, e.g. "
                "CLIPDataModule(..., transform=preprocess) with preprocess from clip_lightning.load "
                "(the clip-lightning CLI links it from the model)"
            )
        needed = {"validate": ["val"], "predict": ["test"]}.get(stage or "test", self._test_splits)
        self._build(needed)
        if self.verify and not self._check.problems:
            rank_zero_info(f"{self.dataset}: every image of {', '.join(needed)} decodes (--data.verify true)")
        _ = self.classnames  # validate class names against the data now, not mid-run

    # ---- prompts ------------------------------------------------------------------------------

    @property
    def classnames(self) -> list[str]:
        """The names put into prompts, one per class in label order."""
        if self._classnames is None:
            self._classnames = self._resolve_classnames()
        return self._classnames

    def _resolve_classnames(self) -> list[str]:
        folder = folder_classes(self.split("test"))
        if self.classnames_spec is not None:
            names = read_list(self.classnames_spec, "classnames")
        elif self._info.prompts is not None:
            names = dataset_prompts(self._info.prompts)[0]
        elif self._info.prompts_from is not None:
            own = self._info.prompts_from(self.root)[0]
            if own is None:
                raise ConfigError(
                    f"{self.dataset}: the data under {self.root!r} names no classes (no class names file "
                    "there); pass --data.classnames with one name per class, in label order"
                )
            names = own
        else:
            assert folder is not None
            names = [c.replace("_", " ") for c in folder]
        if folder is not None and len(names) != len(folder):
            raise ConfigError(
                f"{len(names)} class names for {len(folder)} classes in {self.root!r} "
                f"({folder[:3]}...): give exactly one name per class folder, in sorted folder order"
            )
        return names

    @property
    def templates(self) -> list[str]:
        """The dataset's default prompt templates (``{}`` takes a class name)."""
        if self.templates_spec is not None:
            return read_list(self.templates_spec, "templates")
        if self._info.prompts is not None:
            return dataset_prompts(self._info.prompts)[1]
        own = self._info.prompts_from(self.root)[1] if self._info.prompts_from is not None else None
        return own if own else list(DEFAULT_TEMPLATES)

    @property
    def num_classes(self) -> int:
        """How many classes (the number of class names)."""
        return len(self.classnames)

    # ---- loaders ------------------------------------------------------------------------------

    def _loader(self, split: str) -> DataLoader:
        assert self.transform is not None
        return DataLoader(
            # Under DDP an image found unreadable while decoding must not stop one process alone:
            # it comes marked, and the task raises on every process (IndexedDataset).
            IndexedDataset(self.split(split), self.transform, mark_unreadable=in_process_group()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per split in ``test_splits`` (a single loader when there is one)."""
        self._build(self._test_splits)  # a probe's extra splits are checked before any work too
        loaders = [self._loader(s) for s in self._test_splits]
        return loaders[0] if len(loaders) == 1 else loaders

    def val_dataloader(self) -> DataLoader:
        """The "val" split."""
        return self._loader("val")

    def predict_dataloader(self) -> DataLoader:
        """The "test" split."""
        return self._loader("test")
