"""LinearProbe: a callback that fits a linear probe on a task's frozen image features."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import replace
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
from ..distributed import all_reduce, in_process_group, local_only, raise_on_every_rank
from ..errors import ConfigError, UserError
from ..reporting import check_writable, log_probe_search
from ..tasks.base import FrozenBackboneTask
from .cache import FeatureCache
from .fewshot import FewShot, log_few_shot
from .protocol import ProbeResult, Solver, linear_probe
from .runtime import every_core, limited_batches
from .shards import cached_share, save_merged

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
        timeout_s: with ``solver="sklearn"``, how long other processes wait for rank 0's fit.
        solver: ``torch`` (default): L-BFGS in torch on the features' device, scikit-learn's
            objective and stopping rule, warm-started along the search (``warm_start: false``:
            each fit from zeros, scikit-learn's path). ``sklearn``: the reference, on rank 0.
        shard_features: with the torch solver under DDP, each process keeps its own samples'
            features and every step all-reduces loss and gradient: nothing is gathered, and
            with 2, 4 or 8 processes the result is one process's, bit for bit
            (:mod:`.rowsums`). False: rank 0 fits every process's gathered features.
        shots, seeds: few-shot probes (:mod:`.fewshot`), e.g. ``[1, 2, 4, 8, 16]`` (the paper's
            Figure 6): for each k and seed, k train images per class fitted at C.
    """

    def __init__(
        self,
        C: float | None = None,
        feature_kind: Literal["projected", "penultimate"] = "penultimate",
        max_iter: int = 1000,
        cache_dir: str | None = None,
        timeout_s: float = 24 * 3600,
        solver: Solver = "torch",
        shard_features: bool = True,
        shots: Sequence[int] | None = None,
        seeds: Sequence[int] = (0, 1, 2),
        warm_start: bool = True,
    ) -> None:
        if C is not None and C <= 0:
            raise ConfigError(f"C must be positive, got {C}")
        if feature_kind not in ("projected", "penultimate"):
            raise ConfigError(f"feature_kind must be 'projected' or 'penultimate', got {feature_kind!r}")
        if solver not in ("torch", "sklearn"):
            raise ConfigError(f"solver must be 'torch' or 'sklearn', got {solver!r}")
        if max_iter < 1:
            raise ConfigError(f"max_iter must be at least 1, got {max_iter}")
        self.C = C
        self.few_shot = FewShot(shots, seeds) if shots is not None else None
        self.solver, self.warm_start = solver, warm_start
        self.shard_features = shard_features
        self.feature_kind = feature_kind
        self.max_iter = max_iter
        self.cache = FeatureCache(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.splits = ["train", "test"] if C is not None else ["train", "val", "test"]
        self._cached: dict[str, dict[str, np.ndarray]] = {}
        self._index: dict[str, torch.Tensor] = {}  # each share's dataset indices (for few-shot draws)
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
        error = None
        if self.cache is not None and trainer.is_global_zero:  # before features are extracted, not after
            try:
                check_writable(
                    self.cache.root, "the probe's feature cache", "--trainer.callbacks.init_args.cache_dir"
                )
            except ConfigError as err:
                error = err
        raise_on_every_rank(error)
        dm = clip_datamodule(trainer)
        if dm.multilabel:  # the same on every process
            raise ConfigError(
                f"LinearProbe fits one class per image and {dm.dataset} is multi-label: "
                "drop the LinearProbe callback for this dataset (zero-shot scores it by mAP)"
            )
        cached: dict[str, dict[str, np.ndarray]] = {}
        if self.cache is not None and self._sharded(trainer):
            # Every process reads its own share of a hit (rows rank, rank + world, ...).
            for split in ("train", "val"):
                if split in self.splits:
                    hit = cached_share(self.cache, self._cache_key(trainer, module, split), module.device)
                    if hit is not None:
                        cached[split] = hit
            rank_zero_info(f"LinearProbe: cached features for {sorted(cached) or 'no split'}")
        elif self.cache is not None and trainer.is_global_zero:
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
        if in_process_group() and not self._sharded(trainer):
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
        limited = limited_batches(trainer)
        if not limited and not torch.equal(index, torch.arange(expected)):
            raise RuntimeError(f"{split}: gathered {index.numel()} distinct samples, expected {expected}")
        if self.cache is not None and split != "test" and not limited:  # a partial split is never cached
            self.cache.save(self._cache_key(trainer, module, split), {**arrays, "index": index.numpy()})
        return arrays["features"], arrays["labels"]

    def _sharded(self, trainer: L.Trainer) -> bool:
        """Whether every process fits on its own samples (else rank 0 fits gathered features)."""
        return self.solver == "torch" and (self.shard_features or trainer.world_size == 1)

    def _share(
        self, trainer: L.Trainer, module: FrozenBackboneTask, split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's own (features, labels) of ``split``, where they were made; a collective."""
        if split in self._cached:
            data = self._cached[split]
            device = module.device
            self._index[split] = torch.from_numpy(data["index"]).to(device)
            return torch.from_numpy(data["features"]).to(device), torch.from_numpy(data["labels"]).to(device)
        index, labels, features = module.local(split, "label", "features")
        self._index[split] = index
        expected = len(clip_datamodule(trainer).split(split))  # type: ignore[arg-type]
        limited = limited_batches(trainer)
        count = int(all_reduce(torch.tensor([index.numel()], device=index.device)))
        if not limited and count != expected:
            raise RuntimeError(f"{split}: {count} distinct samples over all processes, expected {expected}")
        if self.cache is not None and split != "test" and not limited:  # a partial split is never cached
            save_merged(self.cache, self._cache_key(trainer, module, split), index, labels, features)
        return features.float(), labels.long()

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = self._evaluator(pl_module)
        if self._sharded(trainer):
            shares = {
                split: (*self._share(trainer, module, split), self._index[split]) for split in self.splits
            }
            # Every process fits on its own samples; the result is the same on all of them.
            alone = every_core() if trainer.world_size == 1 else contextlib.nullcontext()
            classes = len(clip_datamodule(trainer).classnames)
            with alone:
                result = self._fit(shares, classes, trainer.is_global_zero, self._index["train"])
            counts = torch.zeros(trainer.world_size, dtype=torch.int64, device=module.device)
            counts[trainer.global_rank] = len(shares["train"][1])
            # Evidence that no process held more than its own share of the training features.
            self._report(trainer, module, result, {"train_samples_per_process": all_reduce(counts).tolist()})
            return
        data = {split: self._features(trainer, module, split) for split in self.splits}
        outcome: ProbeResult | UserError | None = None
        if trainer.is_global_zero:
            try:
                # rank 0 fits alone: the solver's collectives must not wait for others
                with local_only(), every_core():
                    outcome = self._fit(data, len(clip_datamodule(trainer).classnames), True)
            except UserError as err:  # sent on, so every process stops with it instead of waiting
                outcome = err
        if self._wait_group is not None:
            box = [outcome]
            dist.broadcast_object_list(box, src=0, group=self._wait_group)
            outcome = box[0]
        if isinstance(outcome, UserError):
            raise outcome
        assert outcome is not None
        self._report(trainer, module, outcome, {})

    def _report(
        self, trainer: L.Trainer, module: FrozenBackboneTask, result: ProbeResult, extra: dict[str, Any]
    ) -> None:
        details = {
            "C": result.C,
            "C_searched": self.C is None,
            "feature_kind": self.feature_kind,
            "search": {f"{10**e:.6g}": list(s) for e, s in sorted(result.search.items())},
            "solver": self.solver,
            "warm_start": self.warm_start and self.solver == "torch",
            "fits": result.fits,
            "search_seconds": result.search_seconds,
            "fit_seconds": result.fit_seconds,
            **extra,
        }
        main = f"lp_{clip_datamodule(trainer).main_metric}"  # e.g. lp_mean_per_class_recall
        main_metric = main if main in result.metrics else None
        few = result.few_shot  # k-shot probes: their means join the metrics, their details few_shot
        metrics = {**result.metrics, **(few.metrics(clip_datamodule(trainer).main_metric) if few else {})}
        details.update({"few_shot": few.to_json()} if few else {})
        for key, value in metrics.items():
            # max of identical values is exact (a mean over processes may round)
            module.log(f"test/{key}", value, sync_dist=True, reduce_fx="max")
        module.add_results("linear_probe", metrics, main_metric=main_metric, linear_probe=details)
        if trainer.is_global_zero and result.search:
            scores = {10**e: s[0] for e, s in result.search.items()}
            log_probe_search(trainer, module.log_folder, scores, result.C)
        if trainer.is_global_zero and few is not None:
            log_few_shot(trainer, module.log_folder, few, result.metrics["lp_acc1"])

    def _fit(
        self, data: dict[str, Any], num_classes: int, talk: bool, index: torch.Tensor | None = None
    ) -> ProbeResult:
        from tqdm import tqdm

        train, test = data["train"], data["test"]
        val = data.get("val")
        rank_zero_info(
            f"LinearProbe: {self.feature_kind} features, train {train[0].shape}, "
            f"val {None if val is None else val[0].shape}, test {test[0].shape}"
        )
        quiet = self.C is not None or not talk
        with tqdm(desc="C search", unit="fit", disable=quiet) as bar:

            def progress(c: float, score: tuple[float, float]) -> None:
                bar.update(1)
                bar.set_postfix(C=f"{c:.3g}", val_acc=f"{score[0]:.4f}")

            result = linear_probe(
                train, val, test, num_classes, C=self.C, max_iter=self.max_iter, on_evaluate=progress,
                solver=self.solver, warm_start=self.warm_start,
            )  # fmt: skip
        rank_zero_info(f"LinearProbe: C = {result.C:.4g}, test top-1 {result.metrics['lp_acc1']:.4f}")
        if self.few_shot is not None:  # at the C just chosen (or given), on the same train/test features
            given = "given" if self.C is not None else "search"
            few = self.few_shot.run(train, test, num_classes, result.C, C_from=given, solver=self.solver,
                                    max_iter=self.max_iter, index=index)  # fmt: skip
            result = replace(result, few_shot=few)
        return result
