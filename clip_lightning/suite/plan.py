"""A sweep's runs: which model on which data for which tasks, and the file each result goes to."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..models import MODELS
from .collections import expand_datasets

__all__ = ["CAPTION_DATASETS", "FOLDER_KINDS", "TASKS", "Run", "plan_runs", "pretrained_slug"]

TASKS = ("zeroshot_classification", "linear_probe")
# Image-caption sets (Karpathy's or CLIP_benchmark's annotations): always zero-shot retrieval.
CAPTION_DATASETS = ("flickr30k", "flickr8k", "mscoco_captions")
# Datasets read from a folder of the user's that a sweep names: ``wds/<name>``, ``imagefolder/<name>``.
FOLDER_KINDS = ("wds", "imagefolder")


def pretrained_slug(model: str, pretrained: bool) -> str:
    """CLIP_benchmark's ``pretrained`` in file names: ``openai``, ``random`` or the file's name."""
    if not pretrained:
        return "random"
    if model in MODELS:
        return "openai"
    return _slug(os.path.basename(model.rstrip("/")) or model)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", text).strip("_")


@dataclass(frozen=True)
class Run:
    """One model on one dataset (``cifar10`` or ``wds/<name>``), with its data folder."""

    model: str
    dataset: str
    root: str
    pretrained: bool
    tasks: tuple[str, ...]

    @property
    def is_wds(self) -> bool:
        return self.dataset.startswith("wds/")

    @property
    def registry_name(self) -> str:
        """The registry dataset that reads it: ``wds/<name>`` is ``wds``, ``imagefolder/<name>``
        (your own folder, named in the table) is ``imagefolder``."""
        prefix = self.dataset.split("/", 1)[0]
        return prefix if prefix in FOLDER_KINDS and "/" in self.dataset else self.dataset

    @property
    def is_retrieval(self) -> bool:
        """Zero-shot retrieval: a caption dataset, or a WebDataset whose dataset_type.txt says so."""
        if self.dataset in CAPTION_DATASETS:
            return True
        kind = os.path.join(self.root, "dataset_type.txt")
        if self.is_wds and os.path.isfile(kind):
            with open(kind, encoding="utf-8") as f:
                return f.read().strip() == "retrieval"
        return False

    @property
    def run_tasks(self) -> tuple[str, ...]:
        """The tasks this run reports (retrieval data has only retrieval)."""
        return ("zeroshot_retrieval",) if self.is_retrieval else self.tasks

    def output_name(self, task: str, language: str = "en") -> str:
        """CLIP_benchmark's file name: ``{dataset}_{pretrained}_{model}_{language}_{task}.json``."""
        model = os.path.basename(self.model.rstrip("/")) if os.path.exists(self.model) else self.model
        parts = (
            self.dataset.replace("/", "_"),
            pretrained_slug(self.model, self.pretrained),
            model,
            language,
            task,
        )
        return "_".join(_slug(p) for p in parts) + ".json"

    @property
    def label(self) -> str:
        return f"{self.model} ({pretrained_slug(self.model, self.pretrained)}) on {self.dataset}"


def data_root(template: str, dataset: str, roots: dict[str, str]) -> str:
    """The folder of ``dataset``: ``roots[dataset]``, else ``template`` with ``{dataset}`` (as given),
    ``{dataset_cleaned}`` (``/`` as ``-``, CLIP_benchmark's) and ``{name}`` (without ``wds/`` or
    ``imagefolder/``) filled in."""
    if dataset in roots:
        return roots[dataset]
    prefix, _, rest = dataset.partition("/")
    name = rest if prefix in FOLDER_KINDS and rest else dataset
    return template.format(dataset=dataset, dataset_cleaned=dataset.replace("/", "-"), name=name)


def plan_runs(
    models: list[str],
    datasets: list[str],
    template: str,
    roots: dict[str, str],
    tasks: list[str],
    pretrained: bool,
) -> list[Run]:
    """Every model x dataset pair, model-major (each model is loaded once)."""
    names = expand_datasets(datasets)
    return [
        Run(model, name, data_root(template, name, roots), pretrained, tuple(tasks))
        for model in models
        for name in names
    ]
