"""Few-shot linear probes: k training images per class, several seeds, mean and spread per k.

The protocol of the CLIP paper's Figure 6 (accuracy of a linear probe trained on k examples
per class, k = 1, 2, 4, 8, 16, on the same features as the full probe), with these decisions:

- **Which images.** The k-shot set is drawn from the ``train`` split's features (train without
  the held-out ``val``, the same whether C is searched or given). For each class, its images
  sorted by dataset index are permuted by ``numpy.random.default_rng([seed, class])`` and the
  first k are kept: the draw depends on the seed, the class and the labels alone, never on
  the process, the number of processes or the order features arrive in; the sets for
  growing k are nested (the 2-shot set holds the 1-shot one). A class with fewer than k images
  uses all it has, and ``short_classes`` in the results names it.
- **Which C.** The probe's ``C`` when one is given, otherwise the C the full probe's search
  chose on the validation split (``C_from``: ``given`` / ``search``). With k images per class
  there is no validation split to search on; we did not find the paper's own rule for its
  few-shot probes, so none is claimed.
- **The fit.** The configured solver (``torch`` by default, ``sklearn`` the reference) on the
  k-shot set at that C, with the probe's ``max_iter``; scored on the whole test split (the
  full probe's metrics: ``acc1``, ``acc5`` with 5+ classes, ``mean_per_class_recall``).
- **Summary.** Per k, the mean and the sample standard deviation (ddof 1; 0 with one seed) of
  each metric over the seeds. The run's metrics gain ``lp_fewshot_{k}_acc1`` (and
  ``lp_fewshot_{k}_<main metric>`` when the dataset's is another), the mean over seeds.

Under DDP this runs where the full probe's fit runs: on rank 0 with the gathered features, or
with ``shard_features`` on every process with its own share (the draw needs only the gathered
indices and labels; each process keeps its own drawn rows and the solver all-reduces).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from ..distributed import gather_by_index
from ..errors import ConfigError
from ..reporting import publish_figure
from .protocol import Solver, linear_probe

__all__ = ["FewShot", "FewShotResult", "k_shot_indices", "log_few_shot"]


def k_shot_indices(index: Any, labels: Any, k: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """The dataset indices of ``k`` samples per class (sorted) and the classes that had fewer than ``k``.

    ``index`` and ``labels`` (arrays or tensors) may come in any order; the draw is a function
    of the set of ``(index, label)`` pairs, ``k`` and ``seed`` only (see the module docstring).
    """
    index = np.asarray(torch.as_tensor(index).cpu(), dtype=np.int64)
    labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    if index.shape != labels.shape or index.ndim != 1:
        raise ValueError(f"index {index.shape} and labels {labels.shape} must be equal 1-D shapes")
    order = np.argsort(index, kind="stable")
    index, labels = index[order], labels[order]
    if len(index) > 1 and (np.diff(index) == 0).any():
        raise ValueError("index holds a sample twice")
    chosen, short = [], []
    for label in np.unique(labels):
        members = index[labels == label]  # in dataset-index order
        if len(members) < k:
            short.append(int(label))
        # One generator per (seed, class): a class's draw does not depend on the other classes.
        draw = np.random.default_rng([seed, int(label)]).permutation(len(members))[:k]
        chosen.append(members[draw])
    return (np.sort(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)), short


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


@dataclass
class FewShotResult:
    """Every k-shot fit: ``runs[k]`` holds one entry per seed (metrics without ``lp_``, ``n_iter``,
    ``converged``, ``seconds``, ``train_samples``); ``short_classes[k]`` the classes with fewer than k."""

    shots: list[int]
    seeds: list[int]
    C: float
    C_from: str
    solver: Solver
    runs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    short_classes: dict[int, list[int]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self, k: int) -> tuple[dict[str, float], dict[str, float]]:
        """``(mean, std)`` over the seeds of each metric of the k-shot fits."""
        names = list(self.runs[k][0]["metrics"])
        values = {n: [run["metrics"][n] for run in self.runs[k]] for n in names}
        return {n: float(np.mean(v)) for n, v in values.items()}, {n: _std(v) for n, v in values.items()}

    def metrics(self, main_metric: str = "acc1") -> dict[str, float]:
        """``lp_fewshot_{k}_acc1`` (and ``lp_fewshot_{k}_<main_metric>``): the means over seeds."""
        out = {}
        for k in self.shots:
            mean, _ = self.summary(k)
            for name in dict.fromkeys(["acc1", main_metric]):
                if name in mean:
                    out[f"lp_fewshot_{k}_{name}"] = mean[name]
        return out

    def to_json(self) -> dict[str, Any]:
        """results.json's ``linear_probe.few_shot``."""
        per_k = {}
        for k in self.shots:
            mean, std = self.summary(k)
            per_k[str(k)] = {"mean": mean, "std": std, "short_classes": self.short_classes[k],
                             "runs": self.runs[k]}  # fmt: skip
        return {"shots": self.shots, "seeds": self.seeds, "C": self.C, "C_from": self.C_from,
                "solver": self.solver, "seconds": self.seconds, "per_k": per_k}  # fmt: skip


def _checked(values: Sequence[int] | None, name: str, minimum: int, example: str) -> list[int]:
    option = f"--trainer.callbacks.init_args.{name}"
    if values is None or isinstance(values, str | int) or len(values) == 0:
        raise ConfigError(
            f"LinearProbe's {name} must be a non-empty list of integers, e.g. {option} '{example}'"
        )
    values = list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum]
    if bad:
        raise ConfigError(f"LinearProbe's {name} must be integers >= {minimum}, got {bad[0]!r} in {values}")
    if len(set(values)) != len(values):
        twice = sorted({v for v in values if values.count(v) > 1})
        raise ConfigError(
            f"LinearProbe's {name} lists {twice} more than once; give each value once ({option})"
        )
    return [int(v) for v in values]


class FewShot:
    """k-shot probes for every ``k`` in ``shots`` and seed in ``seeds`` (see the module docstring).

    Raises ConfigError for an empty list, a k below 1, a negative seed or a repeated value.
    """

    def __init__(self, shots: Sequence[int], seeds: Sequence[int] = (0, 1, 2)) -> None:
        self.shots = sorted(_checked(shots, "shots", 1, "[1, 2, 4, 8, 16]"))
        self.seeds = _checked(seeds, "seeds", 0, "[0, 1, 2]")

    def run(
        self,
        train: tuple[Any, Any],
        test: tuple[Any, Any],
        num_classes: int,
        C: float,
        *,
        C_from: str,
        solver: Solver = "torch",
        max_iter: int = 1000,
        index: torch.Tensor | None = None,
    ) -> FewShotResult:
        """Fit every k-shot probe on ``train`` at ``C`` and score it on ``test``.

        ``index=None``: ``train`` is the whole split in dataset-index order (rank 0's gathered
        features). Otherwise ``train`` is this process's share and ``index`` its dataset indices:
        the draw gathers every process's indices and labels (a collective), each process keeps its
        own drawn rows and the torch solver all-reduces, as the full probe does with shares.
        """
        x, y = train[0], train[1]
        everyone_index: Any
        subset: tuple[Any, Any, torch.Tensor]
        if index is None:
            everyone_index, everyone_labels = np.arange(len(y)), y
            local = np.arange(len(y))
        else:
            labels = torch.as_tensor(y)
            everyone_index, everyone_labels = gather_by_index(
                index.to(labels.device), labels, device=labels.device
            )
            local = index.cpu().numpy()
        result = FewShotResult(self.shots, self.seeds, float(C), C_from, solver)
        start = time.perf_counter()
        for k in self.shots:
            result.runs[k] = []
            for seed in self.seeds:
                chosen, short = k_shot_indices(everyone_index, everyone_labels, k, seed)
                result.short_classes[k] = short  # the same for every seed
                keep = np.isin(local, chosen)
                keys = torch.from_numpy(local[keep])  # the rows' dataset indices order the sums
                if isinstance(x, torch.Tensor):
                    mask = torch.from_numpy(keep).to(x.device)
                    subset = (x[mask], torch.as_tensor(y)[mask], keys)
                else:
                    subset = (x[keep], np.asarray(y)[keep], keys)
                probe = linear_probe(subset, None, test, num_classes, C=C, max_iter=max_iter, solver=solver)
                fit = probe.fits[-1]
                result.runs[k].append({
                    "seed": seed, "train_samples": len(chosen),
                    "metrics": {name.removeprefix("lp_"): v for name, v in probe.metrics.items()},
                    "n_iter": fit["n_iter"], "converged": fit["converged"], "seconds": fit["seconds"],
                })  # fmt: skip
            mean, std = result.summary(k)
            rank_zero_info(f"LinearProbe: {k}-shot test top-1 {mean['acc1']:.4f} ± {std['acc1']:.4f}")
        result.seconds = time.perf_counter() - start
        return result


def log_few_shot(trainer: L.Trainer, folder: str, result: FewShotResult, full: float | None = None) -> None:
    """Top-1 accuracy (mean ± std over seeds) against k, log2 axis: to TensorBoard and as
    ``linear_probe_few_shot.png``; ``full``: the probe on every training image, drawn as a line. Rank 0 only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means, stds = zip(*(result.summary(k) for k in result.shots), strict=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(result.shots, [m["acc1"] * 100 for m in means], yerr=[s["acc1"] * 100 for s in stds],
                fmt="o-", capsize=3, label=f"k-shot probe ({len(result.seeds)} seeds, C = {result.C:.3g})")  # fmt: skip
    if full is not None:
        ax.axhline(full * 100, color="gray", linestyle="--", label="probe on all training images")
    ax.set_xscale("log", base=2)
    ax.set_xticks(result.shots, [str(k) for k in result.shots])
    ax.set_xlabel("training images per class (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    publish_figure(trainer, folder, "linear_probe_few_shot.png", "test/linear_probe_few_shot", fig)
