"""What every task on a frozen CLIP backbone shares: outputs per split, gathering, features, results.

The flow of a run: image -> transform (the backbone's ``preprocess``) -> encoder -> features ->
task. A task subclasses :class:`FrozenBackboneTask` and implements its steps; callbacks (the
linear probe) work through the documented methods below, never by writing the task's attributes.

Order of events in ``test``, which is what results rely on (Lightning's loop, whatever the order of
callback and module hooks within one event): every ``setup`` (callbacks ask for features
there), the batches, every ``on_test_epoch_end`` (tasks and callbacks add their results there),
then ``on_test_end``, where results.json is written once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

import lightning as L
import torch

from ..datamodule import clip_datamodule
from ..datasets.samples import unreadable_marks
from ..distributed import (
    destroy_group_at_exit,
    gather_by_index,
    in_process_group,
    own_by_index,
    raise_on_every_rank,
)
from ..errors import ConfigError
from ..models import MODELS, transform_resolution
from ..models.formats import Architecture
from ..reporting import FolderClaim, check_writable, print_summary, results_dir, write_results
from .backbone import open_backbone
from .results import RunResult, TaskResult
from .unreadable import raise_on_every_process, read_error

__all__ = ["FeatureKind", "FrozenBackboneTask"]

FeatureKind = Literal["projected", "penultimate"]


class FrozenBackboneTask(L.LightningModule):
    """A frozen CLIP model evaluated split by split (``test``, ``validate``, ``predict``).

    Args:
        name: a name from ``clip_lightning.available_models()`` or a checkpoint path.
        pretrained: ``False`` builds the named architecture with random weights (offline demos,
            tests); its accuracy is meaningless and every report says so.
        download_root: checkpoint cache folder (default ``~/.cache/clip``).
        seed: seed of the random weights when ``pretrained=False``.
        activation, vision_head_width, text_heads: what a bare open_clip state dict's shapes cannot
            tell (``quick_gelu``/``gelu``, 64, width // 64 by default); they override a folder's config.
    """

    # The subclass's own results come first in results.json, before its callbacks'.
    task_name = "features"

    def __init__(
        self,
        name: str = "ViT-B/32",
        pretrained: bool = True,
        download_root: str | None = None,
        seed: int = 0,
        activation: str | None = None,
        vision_head_width: int | None = None,
        text_heads: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = name
        self.pretrained = pretrained
        arch = Architecture(activation, vision_head_width, text_heads)
        backbone = open_backbone(name, pretrained, download_root, seed, arch)
        self.model, self.checkpoint_id = backbone.model, backbone.checkpoint_id
        self.preprocess = backbone.preprocess
        self.checkpoint_format, self.checkpoint_source = backbone.format, backbone.source
        self.log_folder = "."
        self._claim: FolderClaim | None = None
        self._outputs: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
        self._feature_splits: frozenset[str] = frozenset()
        self._feature_kind: FeatureKind = "projected"
        self._results: dict[str, TaskResult] = {}
        self._unreadable_checked = False

    # ---- for callbacks ------------------------------------------------------------------------

    def request_features(self, splits: Iterable[str], kind: FeatureKind) -> None:
        """Keep image features of ``splits`` (``penultimate``: before the final projection).

        Call it from a callback's ``setup``; :meth:`gathered` returns them under ``"features"``.
        """
        if kind not in ("projected", "penultimate"):
            raise ConfigError(f"feature kind must be 'projected' or 'penultimate', got {kind!r}")
        self._feature_splits = frozenset(splits)
        self._feature_kind = kind

    @property
    def feature_splits(self) -> frozenset[str]:
        """The splits whose image features are kept (see :meth:`request_features`)."""
        return self._feature_splits

    def add_results(
        self,
        task: str,
        metrics: dict[str, float],
        num_samples: int | None = None,
        main_metric: str | None = None,
        **extras: Any,
    ) -> None:
        """Add ``task``'s metrics (and JSON-able ``extras``, top-level keys of results.json).

        ``main_metric`` names the one of ``metrics`` the data is reported with; results.json names
        the first task's. Call it from any ``on_test_epoch_end``; results.json is written after all.
        """
        if main_metric is not None and main_metric not in metrics:
            raise ValueError(f"main metric {main_metric!r} is not among {task}'s metrics {list(metrics)}")
        self._results[task] = TaskResult(dict(metrics), dict(extras), num_samples, main_metric)

    def task_datamodule(self) -> Any:
        """The trainer's DataModule, checked for what this task reads (a CLIPDataModule here).

        A task on other data (retrieval's CaptionDataModule) overrides this; what it returns must
        have ``dataset``, ``transform``, ``classnames`` and ``skipped_images``, which
        :meth:`results` and :meth:`setup` read. Raises ConfigError for another DataModule.
        """
        return clip_datamodule(self.trainer)

    def results(self) -> RunResult:
        """The run's results so far, as results.json will hold them."""
        dm = self.task_datamodule()
        return RunResult(
            dataset=dm.dataset,
            model=self.backbone_name,
            pretrained=self.pretrained_tag(),
            checkpoint=self.checkpoint_id,
            checkpoint_format=self.checkpoint_format,
            checkpoint_source=self.checkpoint_source,
            precision=str(self.trainer.precision),
            world_size=self.trainer.world_size,
            classnames=list(dm.classnames),
            templates=self.prompt_templates(),
            # The task's own results first, then the callbacks' in the order of the callback list
            # (whichever of their on_test_epoch_end hooks Lightning ran first).
            tasks=dict(sorted(self._results.items(), key=lambda item: item[0] != self.task_name)),
            skipped_images=list(dm.skipped_images),
        )

    def pretrained_tag(self) -> str:
        """CLIP_benchmark's ``pretrained``: ``openai`` for OpenAI's published weights, ``random``,
        or where the weights came from (a file, a folder, ``hf-hub:ORG/NAME``)."""
        if not self.pretrained:
            return "random"
        return "openai" if self.backbone_name in MODELS else self.checkpoint_source

    def prompt_templates(self) -> list[str]:
        """The prompt templates the run used (none for tasks without text prompts)."""
        return []

    def gathered(self, split: str, *keys: str) -> tuple[torch.Tensor, ...]:
        """``(index, *values)`` of ``split`` from every process, each index once, in index order.

        A collective: every process must call it. First, if any process found an unreadable
        image, every process raises it here (:meth:`raise_unreadable`).
        """
        self.raise_unreadable()
        out = self._outputs[split]
        tensors = [torch.cat(out[k]) if out[k] else torch.empty(0) for k in ("index", *keys)]
        return gather_by_index(*tensors, device=self.device)

    def local(self, split: str, *keys: str) -> tuple[torch.Tensor, ...]:
        """``(index, *values)`` of this process's share of ``split``, in index order, not gathered.

        Each index is kept by exactly one process (the lowest rank that saw it); values stay on
        the device they were made on. A collective (only the indices are exchanged); unreadable
        images are raised first, as in :meth:`gathered`.
        """
        self.raise_unreadable()
        out = self._outputs[split]
        tensors = [torch.cat(out[k]) if out[k] else torch.empty(0) for k in ("index", *keys)]
        tensors[0] = tensors[0].long()  # an empty share must still match the others' index dtype
        return own_by_index(*tensors, device=self.device)

    def raise_unreadable(self) -> None:
        """Raise one UnreadableImageError on every process naming every image that any process
        found unreadable in this stage; else nothing. A collective, run once per stage.

        Under DDP the data marks such a sample (``IndexedDataset``: a blank image, index
        ``-(i + 1)``) instead of raising in one process; the marks are found among the indices
        kept (:meth:`keep`), so a subclass's steps need nothing more than keeping ``index``.
        :meth:`gathered` and :meth:`local` call this first, so no metric sees a blank image;
        the end of each stage calls it in case nothing was gathered.
        """
        if self._unreadable_checked:
            return
        self._unreadable_checked = True
        found: dict[tuple[str, int], str] = {}
        for split, out in self._outputs.items():
            name = "test" if split == "predict" else split  # predict reads the test split
            for position in unreadable_marks(torch.cat(out["index"])) if out["index"] else []:
                found[(name, position)] = read_error(self.task_datamodule().split(name), name, position)
        raise_on_every_process(found)

    # ---- for subclasses -----------------------------------------------------------------------

    def keep(self, split: str, **values: torch.Tensor) -> None:
        """Keep per-sample ``values`` of this batch (``index`` among them) for :meth:`gathered`."""
        out = self._outputs[split]
        for key, value in values.items():
            out[key].append(value.detach())

    def split_of(self, dataloader_idx: int, stage: str) -> str:
        """The split a batch of ``stage`` (``test`` or ``val``) comes from."""
        if stage == "val":
            return "val"
        return clip_datamodule(self.trainer).test_splits[dataloader_idx]

    def encode_batch(self, images: torch.Tensor, split: str) -> torch.Tensor:
        """Projected image embeddings of a batch; keeps the requested features of ``split``."""
        penultimate = self.model.encode_image(images, projected=False)
        projected = self.model.visual.project(penultimate)
        if split in self._feature_splits:
            kept = projected if self._feature_kind == "projected" else penultimate
            self.keep(split, features=kept.float())
        return projected

    # ---- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if in_process_group():
            destroy_group_at_exit()
        datamodule = self.task_datamodule()
        resolution = transform_resolution(getattr(datamodule, "transform", None))
        if resolution != self.model.visual.input_resolution:
            raise ConfigError(
                f"the data transform crops to {resolution} px but {self.backbone_name} takes "
                f"{self.model.visual.input_resolution} px: pass the model's preprocess as the "
                f"{type(datamodule).__name__}'s transform (the CLI links it for you)"
            )
        self.log_folder = results_dir(self.trainer)  # a collective: resolved here, on every process
        error = None
        if self.trainer.is_global_zero:  # the only process that writes there
            try:
                check_writable(
                    self.log_folder, "the run's results", "another logger save_dir or default_root_dir"
                )
                self._release_folder()
                self._claim = FolderClaim(self.log_folder)  # no other run may write results there now
            except ConfigError as err:
                error = err
        raise_on_every_rank(error)

    def teardown(self, stage: str) -> None:
        self._release_folder()

    def _release_folder(self) -> None:
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def _start(self) -> None:
        self._outputs.clear()
        self._unreadable_checked = False

    def on_test_start(self) -> None:
        self._start()
        self._results.clear()

    def on_validation_start(self) -> None:
        self._start()

    def on_predict_start(self) -> None:
        self._start()

    def on_validation_end(self) -> None:
        self.raise_unreadable()

    def on_predict_end(self) -> None:
        self.raise_unreadable()

    def on_test_end(self) -> None:
        self.raise_unreadable()  # before results.json: no file is written from a run that lost images
        if self.trainer.is_global_zero:
            result = self.results()
            path = write_results(self.log_folder, result.to_json())
            print_summary(result.to_json(), path)

    def configure_optimizers(self) -> None:
        raise RuntimeError(
            f"{type(self).__name__} evaluates a frozen model and has nothing to train: "
            "run `test`, `validate` or `predict`."
        )
