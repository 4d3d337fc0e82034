"""scikit-learn's logistic regression, fitted by torch on the features' device.

The objective is exactly scikit-learn's ``LogisticRegression(penalty="l2", solver="lbfgs")``
for a multinomial problem: ``C * sum_i CE_i + 0.5 * ||W||^2``, the intercept unpenalized, one
row of weights per class seen in training. scikit-learn (>= 1.1; 1.9 here) hands scipy's
L-BFGS-B that objective divided by ``C * n`` (n = the sample-weight sum, here the number of
samples), i.e. ``mean_i CE_i + ||W||^2 / (2 C n)``, with ``maxls=50``, ``ftol=64 eps`` and
``gtol=tol``; this module minimizes the same scaled function with :mod:`.lbfgs`, the same
iteration and stopping rules in torch (tested against scipy's), so:

- it stops when ``max |gradient| <= tol`` (scipy's ``gtol`` on the projected gradient, which is
  the gradient: nothing is bounded), before the first iteration and after each;
- or after ``max_iter`` iterations (one direction and its line search each);
- or when an iteration lowers the scaled objective by less than ``64 eps * max(|f|, 1)``;
- ``converged`` is the first or the last, as scikit-learn warns otherwise.

Why L-BFGS-B's iteration and not ``torch.optim.LBFGS``: with ``tol=1e-4`` a fit stops well
before the exact minimum, where two L-BFGS variants stop at different points; measured on the
digits' ViT-B/32 features, torch's LBFGS agreed with scikit-learn on only 94-99% of test
predictions per C. The O(N x D x K) loss and gradient, nearly all of the cost, run where the
features are (a GPU when there is one), in ``dtype`` for the products and float64 for the sums;
the driver's O(K x D) work per iteration runs there too, in float64. :class:`LogisticProblem`
groups the rows once for every fit on them (a search's), and since the data term does not
depend on C, a fit warm-started where an earlier one stopped starts without evaluating there
again; a search's fit starts between the solutions of the Cs around it (:func:`warm_start`).

Under DDP each process holds only its own samples: each evaluation sums the loss and gradient
over local rows and all-reduces them (float64), in :mod:`.rowsums`' grouping, whose bits do not
depend on how the rows are split (for 1, 2, 4 or 8 processes). Every process then feeds
identical values to the same deterministic driver and takes identical steps; rank 0's result is
broadcast at the end all the same, so that no rounding anywhere can leave processes with
different models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..distributed import all_reduce, broadcast_from_zero
from .lbfgs import dot, minimize
from .rowsums import chunk_rows, group_counts, loss_and_gradient
from .search import Score

__all__ = [
    "DEFAULT_DTYPE",
    "LogisticProblem",
    "TorchLogistic",
    "fit_logistic",
    "topk_classes",
    "validation_score",
    "warm_start",
]

# float32 features and products, with the optimizer's state and the sums in float64: half the
# memory traffic of float64, and test predictions agree with scikit-learn about as well as
# scikit-learn's agree with its own fit on the same rows reordered (experiments/probe_benchmark.py).
DEFAULT_DTYPE = torch.float32


@dataclass
class TorchLogistic:
    """A fitted probe: ``weight`` ``[K, D]`` and ``bias`` ``[K]`` (float64) for labels ``classes``."""

    weight: torch.Tensor
    bias: torch.Tensor
    classes: torch.Tensor
    n_iter: int
    converged: bool

    def log_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[N, K]`` (float64) of each of :attr:`classes`."""
        x = x.to(self.weight.device)
        logits = x.to(self.weight.dtype) @ self.weight.T + self.bias
        return torch.log_softmax(logits, dim=1)


def _as_tensor(a: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
    return t if device is None else t.to(device)


def global_classes(y: torch.Tensor) -> torch.Tensor:
    """The sorted labels present on any process (a collective under DDP)."""
    bound = torch.tensor([int(y.max()) + 1 if y.numel() else 0], dtype=torch.int64, device=y.device)
    bound = all_reduce(bound, op="max")
    present = torch.bincount(y, minlength=int(bound)).clamp_(max=1)
    return torch.nonzero(all_reduce(present), as_tuple=False).flatten()


class LogisticProblem:
    """Training rows prepared once for fits at any C (a search's): classes, grouped rows, count.

    ``x`` ``[N, D]`` (or blocks of rows in order, e.g. train and val features: grouped without
    joining them first), labels ``y``, ``index``: each row's dataset index (unique over processes),
    which orders the sums; None: ``0 .. N-1``, the rows of one process holding them all. Under
    DDP each process passes its own rows (building this is a collective). The products run on
    ``x``'s device in ``dtype``; optimizer state and sums in float64.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        y: np.ndarray | torch.Tensor,
        index: np.ndarray | torch.Tensor | None = None,
        dtype: torch.dtype = DEFAULT_DTYPE,
    ) -> None:
        blocks = [_as_tensor(b) for b in ([x] if isinstance(x, np.ndarray | torch.Tensor) else x)]
        self.device, self.dtype = blocks[0].device, dtype
        yt = _as_tensor(y, self.device).long()
        self.classes = global_classes(yt)
        self.n = float(all_reduce(torch.tensor([float(len(yt))], dtype=torch.float64, device=self.device)))
        self.dims = blocks[0].shape[1]
        keys = torch.arange(len(yt), device=self.device) if index is None else _as_tensor(index, self.device)
        target = torch.searchsorted(self.classes, yt)
        self.chunks = chunk_rows(blocks, target, keys, group_counts(keys), dtype)
        # Where each fit stopped and the data sums there, which do not depend on C, so that a
        # fit warm-started there (the search's) starts without evaluating; each costs what its
        # model does (two [K, D + 1] float64). ``_last``: the last point evaluated.
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ends: list[tuple[torch.Tensor, torch.Tensor]] = []

    def data_sums(self, theta: torch.Tensor, reuse: bool = True) -> torch.Tensor:
        """``[sum_i CE_i, its gradient]`` (float64, the gradient ``[K, D + 1]`` flattened) at
        ``theta`` ``[K, D + 1]`` (float64 on the features' device: each class's weights, its bias
        last). ``reuse``: first look among the points where fits stopped."""
        for point, sums in reversed(self._ends if reuse else []):
            if torch.equal(point, theta):
                return sums
        sums = loss_and_gradient(self.chunks, theta.to(self.dtype))
        self._last = (theta, sums)
        return sums

    def fit(
        self, C: float, max_iter: int = 1000, tol: float = 1e-4, init: TorchLogistic | None = None
    ) -> TorchLogistic:
        """Minimize scikit-learn's objective at ``C``; ``init`` warm-starts from another fit on the
        same classes (:func:`warm_start`); otherwise it starts from zeros, as scikit-learn does."""
        k, d, device = len(self.classes), self.dims, self.device
        theta = torch.zeros(k, d + 1, dtype=torch.float64, device=device)
        if init is not None and torch.equal(init.classes, self.classes.to(init.classes.device)):
            theta[:, :d] = init.weight
            theta[:, d] = init.bias
        penalty = 1.0 / (C * self.n)
        evaluations = [0]

        def evaluate(point: torch.Tensor) -> tuple[float, torch.Tensor]:
            # the same bits on every process, so the same steps everywhere; only the start (the
            # driver's first evaluation) can be where an earlier fit stopped
            sums = self.data_sums(point, reuse=evaluations[0] == 0)
            evaluations[0] += 1
            weight = point[:, :d]
            grad = sums[1:].view(k, d + 1) / self.n
            grad[:, :d] += penalty * weight
            # dot: the same bits whatever each process's thread count
            return float(sums[0]) / self.n + 0.5 * penalty * dot(weight, weight), grad

        with torch.no_grad():
            found = minimize(evaluate, theta, max_iter, tol)
        if self._last is not None and self._last[0] is found.x:
            self._ends.append(self._last)
        theta = broadcast_from_zero(found.x.clone())
        return TorchLogistic(
            weight=theta[:, :d].clone(),
            bias=theta[:, d].clone(),
            classes=self.classes,
            n_iter=found.n_iter,
            converged=found.converged,
        )


def warm_start(fitted: Mapping[float, TorchLogistic], exponent: float) -> TorchLogistic | None:
    """Where a fit at ``C = 10**exponent`` starts, from fits at other Cs (``{log10 C: model}``).

    Between two fitted Cs (every refinement step of the search): their solutions interpolated
    linearly in log10 C, since the solution moves smoothly with C. Against the nearest C's
    solution (measured with scipy's driver), the whole search took 8,888 iterations instead of
    11,758 on the CIFAR-10 subset's features, with the same C and 99.55% of test predictions
    equal to scikit-learn's instead of 99.45%, and 63 evaluations instead of 75 on the
    CIFAR-100-size ones (experiments/probe_benchmark.py). Outside them: the nearest C's solution. None when nothing
    is fitted. A start that already meets ``tol`` is the fit (the test comes before the first
    iteration, as in scikit-learn): on the digits' features every fit above C = 100 returns
    C = 100's solution. ``linear_probe(warm_start=False)`` starts every fit from zeros (README).
    """
    if not fitted:
        return None
    below = [e for e in fitted if e <= exponent]
    above = [e for e in fitted if e >= exponent]
    if not below or not above:
        return fitted[min(fitted, key=lambda e: abs(e - exponent))]
    low, high = max(below), min(above)
    a, b = fitted[low], fitted[high]
    if low == high or not torch.equal(a.classes, b.classes):
        return a if abs(low - exponent) <= abs(high - exponent) else b
    t = (exponent - low) / (high - low)
    return TorchLogistic(
        weight=torch.lerp(a.weight, b.weight, t),
        bias=torch.lerp(a.bias, b.bias, t),
        classes=a.classes,
        n_iter=0,
        converged=False,
    )


def fit_logistic(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    C: float,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init: TorchLogistic | None = None,
    dtype: torch.dtype = DEFAULT_DTYPE,
    index: np.ndarray | torch.Tensor | None = None,
) -> TorchLogistic:
    """One fit at ``C`` on this process's ``(x, y)`` (all processes' under DDP): :class:`LogisticProblem`."""
    return LogisticProblem(x, y, index, dtype).fit(C, max_iter, tol, init)


def validation_score(
    model: TorchLogistic, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
) -> Score:
    """``(accuracy, -log loss)`` over every process's samples: accuracy decides, log loss breaks ties."""
    log_p = model.log_proba(_as_tensor(x))
    yt = _as_tensor(y, log_p.device).long()
    position = torch.searchsorted(model.classes.to(log_p.device), yt)
    correct = (model.classes.to(log_p.device)[log_p.argmax(1)] == yt).sum(dtype=torch.float64)
    nll = -log_p.gather(1, position.clamp(max=len(model.classes) - 1)[:, None]).sum(dtype=torch.float64)
    totals = all_reduce(
        torch.stack([correct, nll, torch.tensor(float(len(yt)), dtype=torch.float64, device=log_p.device)])
    )
    return float(totals[0] / totals[2]), -float(totals[1] / totals[2])


def topk_classes(model: TorchLogistic, x: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """Each row's ``k`` most probable classes, best first (``[N, k]`` labels, on CPU)."""
    log_p = model.log_proba(_as_tensor(x))
    k = min(k, log_p.shape[1])
    # A stable sort on -log p: ties keep the lower class first, as scikit-learn's argsort does.
    columns = torch.sort(-log_p, dim=1, stable=True).indices[:, :k]
    return model.classes.to(columns.device)[columns].cpu()
