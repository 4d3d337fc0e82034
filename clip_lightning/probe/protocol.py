"""The CLIP paper's linear-probe protocol: check the labels, choose C on val, refit on train + val, test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ..distributed import all_reduce
from ..errors import ConfigError
from ..metrics import classification_metrics
from . import sklearn_solver, torch_solver
from .rowsums import GROUPS
from .search import Score, search_c
from .sklearn_solver import fit_logistic

if TYPE_CHECKING:
    from .fewshot import FewShotResult

__all__ = ["ProbeResult", "Solver", "check_classes", "fit_logistic", "linear_probe", "tally_metrics"]

Solver = Literal["torch", "sklearn"]
# (features, labels[, dataset indices]): NumPy arrays or tensors (this process's share under
# DDP). The indices order the torch solver's sums (:mod:`.rowsums`); without them, 0 .. N-1.
Split = tuple[Any, ...]


def check_classes(train: np.ndarray, num_classes: int, **others: np.ndarray | None) -> None:
    """Refuse, before any fit, training labels that cannot make a probe for ``others``' labels.

    A class in the val or test labels but not in ``train`` could never be predicted; fewer
    than two classes cannot be fitted, fewer than five leave top-5 accuracy undefined.
    """
    hint = "use whole splits (is --trainer.limit_test_batches cutting them? splits are often in class order)"
    seen = set(np.unique(train).tolist())
    for name, labels in others.items():
        missing = sorted(set(np.unique(labels).tolist()) - seen) if labels is not None else []
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise ConfigError(
                f"the probe's {name} features hold {len(missing)} "
                f"{'class' if len(missing) == 1 else 'classes'} that its train features lack "
                f"({'index' if len(missing) == 1 else 'indices'} {shown}), which it could never predict; {hint}"
            )
    if len(seen) < 2 or (num_classes >= 5 and len(seen) < 5):
        raise ConfigError(
            f"the probe's training data holds only {len(seen)} of {num_classes} classes, too few to fit "
            f"a probe{' and score top-5 accuracy' if num_classes >= 5 else ''}; {hint}"
        )


@dataclass
class ProbeResult:
    """The chosen C, the test metrics (``lp_*``), the search's ``{log10 C: score}`` and each fit.

    ``fits``: ``{"C", "n_iter", "converged", "seconds"}`` per fit, the refit last;
    ``search_seconds`` / ``fit_seconds``: wall time of the C search and of the final refit;
    ``few_shot``: the k-shot probes at this C, when they were asked for (:mod:`.fewshot`).
    """

    C: float
    metrics: dict[str, float]
    search: dict[float, Score] = field(default_factory=dict)
    fits: list[dict[str, Any]] = field(default_factory=list)
    search_seconds: float = 0.0
    fit_seconds: float = 0.0
    few_shot: FewShotResult | None = None


def tally_metrics(topk: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """``classification_metrics`` over every process's samples, from all-reduced integer tallies.

    Counts add exactly, so any split of the samples over processes gives the same metrics.
    """
    target = target.to(topk.device).long()
    hit1 = topk[:, 0] == target
    hit5 = (topk[:, :5] == target[:, None]).any(1)
    tallies = torch.stack(
        [torch.bincount(target[h], minlength=num_classes) for h in (torch.ones_like(hit1), hit1, hit5)]
    )
    support, top1, top5 = all_reduce(tallies).double()
    out = {"acc1": float(top1.sum() / support.sum())}
    if num_classes >= 5:
        out["acc5"] = float(top5.sum() / support.sum())
    present = support > 0
    out["mean_per_class_recall"] = float((top1[present] / support[present]).mean())
    return out


def _present(labels: Any, solver: Solver) -> np.ndarray:
    if labels is None:
        return None  # type: ignore[return-value]
    if solver == "torch":  # every process's labels (a collective)
        return torch_solver.global_classes(torch.as_tensor(labels).long()).cpu().numpy()
    return np.asarray(labels)


def _keys(split: Split) -> torch.Tensor | None:
    return torch.as_tensor(split[2]).long() if len(split) > 2 else None


def _joined_keys(train: Split, val: Split) -> torch.Tensor:
    """Keys of train + val rows: train's indices, then val's after every process's train rows."""
    head, tail = _keys(train), _keys(val)
    if head is None or tail is None:
        head, tail = torch.arange(len(train[1])), torch.arange(len(val[1]))
    first = torch.tensor([int(head.max()) + 1 if len(head) else 0], device=head.device)
    bound = int(all_reduce(first, op="max"))  # a collective: every process's train rows
    # A multiple of GROUPS, so a val row's group (key % GROUPS) is its index's, which the
    # process holding it owns: an odd offset would split groups over processes.
    offset = -(-bound // GROUPS) * GROUPS
    return torch.cat([head, tail.to(head.device) + offset])


def linear_probe(
    train: Split,
    val: Split | None,
    test: Split,
    num_classes: int,
    C: float | None = None,
    max_iter: int = 1000,
    on_evaluate: Callable[[float, Score], None] | None = None,
    solver: Solver = "torch",
    dtype: torch.dtype = torch_solver.DEFAULT_DTYPE,
    on_fit: Callable[[float, Any], None] | None = None,
    warm_start: bool = True,
) -> ProbeResult:
    """Choose C on ``val`` (unless given), refit on train + val, report test metrics.

    Metrics: ``lp_acc1``, ``lp_acc5`` (with at least 5 classes), ``lp_mean_per_class_recall``.
    ``solver="torch"``: each search fit warm-starts from the fits already made (interpolated
    between the two Cs around it, else the nearest C's: :func:`.torch_solver.warm_start`), the
    refit from the chosen C's solution (``warm_start=False``: every fit from zeros, as
    scikit-learn's; see the README on near-separable features); under DDP every process calls
    this with its own samples; ``dtype``: its features' and products' precision.
    ``solver="sklearn"``: scikit-learn from scratch each time, on one process with all samples.
    ``on_fit(C, model)`` sees every fit (the search's, then the refit).
    """
    if solver not in ("torch", "sklearn"):
        raise ConfigError(f"solver must be 'torch' or 'sklearn', got {solver!r}")
    check_classes(
        _present(train[1], solver),
        num_classes,
        val=None if val is None else _present(val[1], solver),
        test=_present(test[1], solver),
    )
    fits: list[dict[str, Any]] = []
    fitted: dict[float, Any] = {}

    def prepare(x: Any, y: Any, keys: Any) -> Any:
        # the torch solver groups the rows once for every fit on them (the search's)
        return (x, y) if solver == "sklearn" else torch_solver.LogisticProblem(x, y, keys, dtype)

    def fit(rows: Any, c: float) -> Any:
        start = time.perf_counter()
        if solver == "sklearn":
            x, y = rows
            model = sklearn_solver.fit_logistic(x, y, c, max_iter)
            n_iter = int(np.max(model.n_iter_))
            converged = n_iter < max_iter
        else:
            init = torch_solver.warm_start(fitted, float(np.log10(c))) if warm_start else None
            model = rows.fit(c, max_iter, init=init)
            n_iter, converged = model.n_iter, model.converged
        fits.append({"C": float(c), "n_iter": n_iter, "converged": converged,
                     "seconds": time.perf_counter() - start})  # fmt: skip
        if on_fit is not None:
            on_fit(float(c), model)
        return model

    score = torch_solver.validation_score if solver == "torch" else sklearn_solver.validation_score
    search: dict[float, Score] = {}
    start = time.perf_counter()
    if C is None:
        if val is None or len(val[1]) == 0:
            raise ValueError("choosing C needs a validation split; give one or a fixed C")
        rows = prepare(train[0], train[1], _keys(train))

        def evaluate(c: float) -> Score:
            model = fit(rows, c)
            fitted[float(np.log10(c))] = model
            return score(model, val[0], val[1])

        C, search = search_c(evaluate, on_evaluate=on_evaluate)
        del rows  # before the refit's rows: one copy of the features at a time
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    x_fit, y_fit, keys = train[0], train[1], _keys(train)
    if val is not None and len(val[1]):
        join = np.concatenate if isinstance(train[0], np.ndarray) else torch.cat
        y_fit = join([train[1], val[1]])
        # the torch solver groups train and val rows without joining them: one copy, not two
        x_fit = join([train[0], val[0]]) if solver == "sklearn" else [train[0], val[0]]
        keys = _joined_keys(train, val) if solver == "torch" else None
    if fitted:  # the refit starts from the chosen C's solution
        fitted = {float(np.log10(C)): fitted[min(fitted, key=lambda e: abs(e - np.log10(C)))]}
    model = fit(prepare(x_fit, y_fit, keys), C)
    fit_seconds = time.perf_counter() - start
    y_test = torch.as_tensor(test[1]).long()
    if solver == "torch":
        metrics = tally_metrics(torch_solver.topk_classes(model, test[0], 5), y_test, num_classes)
    else:
        metrics = classification_metrics(sklearn_solver.topk_classes(model, test[0], 5), y_test, num_classes)
    return ProbeResult(
        C=float(C),
        metrics={f"lp_{k}": v for k, v in metrics.items()},
        search=search,
        fits=fits,
        search_seconds=search_seconds,
        fit_seconds=fit_seconds,
    )
