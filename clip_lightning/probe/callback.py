"""LinearProbe: a callback that fits a linear probe on a task's frozen image features."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from ..datamodule import clip_datamodule
from ..datasets import dataset_fingerprint
from ..distributed import in_process_group
from ..errors import ConfigError, UserError
from ..reporting import log_probe_search
from ..tasks.base import FrozenBackboneTask
from .cache import FeatureCache
from .protocol import ProbeResult, linear_probe

__all__ = ["LinearProbe"]


class LinearProbe(Callback):
    """Linear-probe evaluation during ``test``: train/val/test features -> logistic regression.

    Args:
        C: a fixed inverse regularization (e.g. 0.316, OpenAI's README); None searches it on
            the validation split with the CLIP paper's procedure.
        feature_kind: ``penultimate`` (before the final projection, as the paper's probes) or
            ``projected`` (``encode_image``, as OpenAI's README).
        max_iter: L-BFGS iterations.
        cache_dir: where train/val features are cached between runs (None: no cache).
        timeout_s: how long other processes wait for rank 0's fit before giving up.
    """

    def __init__(
        self,
        C: float | None = None,
        feature_kind: Literal["projected", "penultimate"] = "penultimate",
        max_iter: int = 1000,
        cache_dir: str | None = None,
        timeout_s: float = 24 * 3600,
    ) -> None:
        if C is not None and C <= 0:
            raise ConfigError(f"C must be positive, got {C}")
        if feature_kind not in ("projected", "penultimate"):
            raise ConfigError(f"feature_kind must be 'projected' or 'penultimate', got {feature_kind!r}")
        self.C = C
        self.feature_kind = feature_kind
        self.max_iter = max_iter
        self.cache = FeatureCache(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.splits = ["train", "test"] if C is not None else ["train", "val", "test"]
        self._cached: dict[str, dict[str, np.ndarray]] = {}
        self._wait_group: Any = None

    # ---- set-up: which splits to extract -----------------------------------------------------

    def _cache_key(self, trainer: L.Trainer, module: FrozenBackboneTask, split: str) -> dict[str, Any]:
        dm = clip_datamodule(trainer)
        return {
            "checkpoint": module.checkpoint_id,
            "feature_kind": self.feature_kind,
            "dataset": dm.dataset,
            "split": split,
            "root": os.path.realpath(dm.root),
            "samples": dataset_fingerprint(dm.split(split)),
            "split_seed": dm.split_seed,
            "val_fraction": dm.val_fraction,
            "transform": repr(dm.transform),
            "precision": str(trainer.precision),
        }

    @staticmethod
    def _evaluator(pl_module: L.LightningModule) -> FrozenBackboneTask:
        if not isinstance(pl_module, FrozenBackboneTask):
            raise ConfigError(
                f"LinearProbe works with a frozen-backbone task such as CLIPEvaluator, not {type(pl_module).__name__}"
            )
        return pl_module

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "test":
            return
        module = self._evaluator(pl_module)
        dm = clip_datamodule(trainer)
        cached: dict[str, dict[str, np.ndarray]] = {}
        if self.cache is not None and trainer.is_global_zero:
            for split in ("train", "val"):  # the test split is always run (zero-shot needs it)
                if split in self.splits:
                    hit = self.cache.load(self._cache_key(trainer, module, split))
                    if hit is not None:
                        cached[split] = hit
            rank_zero_info(f"LinearProbe: cached features for {sorted(cached) or 'no split'}")
        hits = trainer.strategy.broadcast(sorted(cached))
        self._cached = cached
        extract = [s for s in self.splits if s not in hits]
        module.request_features(extract, self.feature_kind)
        dm.set_test_splits(extract)
        if in_process_group():
            # Its own group with its own timeout: waiting for a long fit must not hit the
            # process group's default (30 min) timeout.
            self._wait_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=self.timeout_s))

    # ---- after extraction: fit on rank 0, share the result -----------------------------------

    def _features(
        self, trainer: L.Trainer, module: FrozenBackboneTask, split: str
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """This split's (features, labels) on rank 0 (None elsewhere); a collective when extracted."""
        if split in self._cached:
            data = self._cached[split]
            return data["features"], data["labels"]
        index, labels, features = module.gathered(split, "label", "features")
        if not trainer.is_global_zero:
            return None
        arrays: dict[str, np.ndarray] = {
            "features": features.numpy().astype(np.float32),
            "labels": labels.numpy().astype(np.int64),
        }
        expected = len(clip_datamodule(trainer).split(split))  # type: ignore[arg-type]
        limited = trainer.limit_test_batches != 1.0
        if not limited and not torch.equal(index, torch.arange(expected)):
            raise RuntimeError(f"{split}: gathered {index.numel()} distinct samples, expected {expected}")
        if self.cache is not None and split != "test" and not limited:  # a partial split is never cached
            self.cache.save(self._cache_key(trainer, module, split), {**arrays, "index": index.numpy()})
        return arrays["features"], arrays["labels"]

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = self._evaluator(pl_module)
        data = {split: self._features(trainer, module, split) for split in self.splits}
        result: ProbeResult | UserError | None = None
        if trainer.is_global_zero:
            try:
                result = self._fit(data, len(clip_datamodule(trainer).classnames))
            except UserError as err:  # sent on, so every process stops with it instead of waiting
                result = err
        if self._wait_group is not None:
            box = [result]
            dist.broadcast_object_list(box, src=0, group=self._wait_group)
            result = box[0]
        if isinstance(result, UserError):
            raise result
        assert result is not None
        for key, value in result.metrics.items():
            # max of identical values is exact (a mean over processes may round)
            module.log(f"test/{key}", value, sync_dist=True, reduce_fx="max")
        details = {
            "C": result.C,
            "C_searched": self.C is None,
            "feature_kind": self.feature_kind,
            "search": {f"{10**e:.6g}": list(s) for e, s in sorted(result.search.items())},
        }
        module.add_results("linear_probe", result.metrics, linear_probe=details)
        if trainer.is_global_zero and result.search:
            scores = {10**e: s[0] for e, s in result.search.items()}
            log_probe_search(trainer, module.log_folder, scores, result.C)

    def _fit(self, data: dict[str, Any], num_classes: int) -> ProbeResult:
        from tqdm import tqdm

        train, test = data["train"], data["test"]
        val = data.get("val")
        rank_zero_info(
            f"LinearProbe: {self.feature_kind} features, train {train[0].shape}, "
            f"val {None if val is None else val[0].shape}, test {test[0].shape}"
        )
        with tqdm(desc="C search", unit="fit", disable=self.C is not None) as bar:

            def progress(c: float, score: tuple[float, float]) -> None:
                bar.update(1)
                bar.set_postfix(C=f"{c:.3g}", val_acc=f"{score[0]:.4f}")

            result = linear_probe(
                train, val, test, num_classes, C=self.C, max_iter=self.max_iter, on_evaluate=progress
            )
        rank_zero_info(f"LinearProbe: C = {result.C:.4g}, test top-1 {result.metrics['lp_acc1']:.4f}")
        return result
