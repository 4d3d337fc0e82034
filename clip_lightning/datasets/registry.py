"""The dataset registry: one :class:`DatasetInfo` per dataset holds everything known about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..errors import ConfigError
from .samples import LabeledImages

__all__ = [
    "DATASETS",
    "MULTILABEL_METRIC",
    "SPLITS",
    "DatasetInfo",
    "Loader",
    "get_dataset_info",
    "register",
    "unregister",
]

SPLITS = ("train", "val", "test")

# (root, split, download) -> that official split; split is "all" for a dataset without splits.
Loader = Callable[[str, str, bool], LabeledImages]

# The main metric of a dataset whose data says it is multi-label (see DatasetInfo.for_root).
MULTILABEL_METRIC = "mean_average_precision"


@dataclass(frozen=True)
class DatasetInfo:
    """Everything about one dataset.

    Attributes:
        name: what ``--data.dataset`` takes.
        load: builds an official split (or, with no ``splits``, the whole set as split "all").
        splits: the official splits; missing "val" (and "test" when there are none at all)
            are carved out by :func:`~clip_lightning.datasets.build_split`.
        description: one line: what it is.
        source: where it comes from (a URL).
        prompts: key of its curated class names and templates in ``prompts.json`` (None: the
            class folder names and a default template).
        main_metric: the metric the CLIP paper reports for it.
        download: whether ``load`` can fetch it.
        multilabel: each sample's label is a multi-hot vector over the classes (Pascal VOC 2007),
            not a class index; such datasets are scored from full scores (mAP), not top-k.
        splits_found: for data laid out by the user: which of ``splits`` exist under a root.
        prompts_from: for data that holds its own prompts (``wds``): root -> ``(class names,
            templates)`` found there, None for either it lacks; used when ``prompts`` is None.
            Templates use ``{}`` for the class name.
        multilabel_from: for data that says its own kind (``wds``): root -> whether it is
            multi-label; :meth:`for_root` applies it.
    """

    name: str
    load: Loader
    splits: tuple[str, ...]
    description: str
    source: str
    prompts: str | None
    main_metric: str = "acc1"
    download: bool = False
    multilabel: bool = False
    splits_found: Callable[[str], tuple[str, ...]] | None = None
    prompts_from: Callable[[str], tuple[list[str] | None, list[str] | None]] | None = None
    multilabel_from: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown splits {sorted(unknown)}; official splits are among {SPLITS}"
            )

    def official_splits(self, root: str) -> tuple[str, ...]:
        """The official splits of the data under ``root``."""
        return self.splits_found(root) if self.splits_found is not None else self.splits

    def for_root(self, root: str) -> DatasetInfo:
        """This entry as the data under ``root`` describes itself: where ``multilabel_from`` says
        multi-label, with ``multilabel`` True and :data:`MULTILABEL_METRIC`; otherwise itself."""
        if self.multilabel_from is None or not self.multilabel_from(root):
            return self
        return replace(self, multilabel=True, main_metric=MULTILABEL_METRIC)


_REGISTRY: dict[str, DatasetInfo] = {}
# Read-only and live: names in registration order, ``name in DATASETS``, ``DATASETS[name]``.
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(_REGISTRY)


def register(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset; its name must be new."""
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def unregister(name: str) -> DatasetInfo:
    """Remove a dataset (for tests and plugins that registered one temporarily); returns its entry."""
    return _REGISTRY.pop(get_dataset_info(name).name)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ConfigError naming the choices when there is none."""
    info = _REGISTRY.get(name)
    if info is None:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    return info
