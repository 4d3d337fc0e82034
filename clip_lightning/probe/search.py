"""The CLIP paper's search for the probe's inverse regularization C (appendix A.3)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["LOG10_C_RANGE", "Score", "exhaustive_c", "search_c"]

# C is searched over 10^-6 .. 10^6 (log10 exponents), the paper's range.
LOG10_C_RANGE = (-6.0, 6.0)
# (validation accuracy, -log loss): accuracy decides, log loss breaks its frequent ties.
Score = tuple[float, float]


def _best(scores: dict[float, Score]) -> float:
    # Highest score; among equal scores the smaller C (stronger regularization).
    return max(scores, key=lambda e: (scores[e], -e))


def search_c(
    evaluate: Callable[[float], Score],
    low: float = LOG10_C_RANGE[0],
    high: float = LOG10_C_RANGE[1],
    start_step: float = 2.0,
    steps_per_decade: int = 8,
    on_evaluate: Callable[[float, Score], None] | None = None,
) -> tuple[float, dict[float, Score]]:
    """The paper's parametric binary search over log10(C).

    Evaluates C at every ``start_step`` decades across [low, high], then around the best so far
    at half the step, and again, until the step is ``1 / steps_per_decade`` decades.
    Returns ``(best C, {log10 C: score})``.
    """
    scores: dict[float, Score] = {}

    def visit(exponent: float) -> None:
        exponent = round(exponent, 9)
        if low - 1e-9 <= exponent <= high + 1e-9 and exponent not in scores:
            scores[exponent] = evaluate(10.0**exponent)
            if on_evaluate is not None:
                on_evaluate(10.0**exponent, scores[exponent])

    for exponent in np.arange(low, high + 1e-9, start_step):
        visit(float(exponent))
    step = start_step / 2
    while step >= 1.0 / steps_per_decade - 1e-12:
        center = _best(scores)
        visit(center - step)
        visit(center + step)
        step /= 2
    return 10.0 ** _best(scores), scores


def exhaustive_c(
    evaluate: Callable[[float], Score],
    low: float = LOG10_C_RANGE[0],
    high: float = LOG10_C_RANGE[1],
    steps_per_decade: int = 8,
) -> tuple[float, dict[float, Score]]:
    """Every point of the search's final grid (for checking the search)."""
    n = round((high - low) * steps_per_decade)
    scores = {
        round(low + i / steps_per_decade, 9): evaluate(10.0 ** (low + i / steps_per_decade))
        for i in range(n + 1)
    }
    return 10.0 ** _best(scores), scores
