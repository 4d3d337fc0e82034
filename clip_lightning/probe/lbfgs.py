"""L-BFGS in torch, on the unknowns' device: the iteration of scipy's L-BFGS-B without bounds.

Contract (tests/probe/test_lbfgs.py, against ``scipy.optimize.minimize(method="L-BFGS-B")``):
the same iteration and stopping rules, so the same iterates up to rounding.

- Direction: ``-H g`` from the last ``m`` correction pairs (two-loop recursion), ``H``'s initial
  scaling ``s'y / y'y`` of the newest pair; ``-g`` with no pairs.
- Line search: Moré and Thuente's (sufficient decrease ``ftol = 1e-3``, curvature ``gtol = 0.9``,
  interval ``xtol = 0.1``), trying a step of ``1 / ||g||`` in the first iteration and 1 after;
  at most ``maxls`` evaluations. One that fails drops the pairs and retries along ``-g`` (or ends
  the fit, when there were none). A pair with ``s'y <= eps * (-g'd) * step`` is not kept.
- Stops: ``max |g| <= gtol`` before the first iteration and after each; after ``max_iter``
  iterations (checked first, as scipy does: such a fit has not converged); when an iteration
  lowers ``f`` by at most ``ftol * max(|f_old|, |f|, 1)``; past ``maxfun`` evaluations.

The driver's work is a few dozen vector operations per iteration on the device, where scipy's
ran on the host and each evaluation copied the gradient there and the point back. Per
iteration on this project's 2-core CPU (experiments/lbfgs_driver.py), scipy's took 0.45-0.62 ms
at 7,690 unknowns (10 x 769), 4.5-6.0 ms at 76,900 and 76-90 ms at ImageNet's 1,025,000
(1,000 x 1,025); this one 0.36-0.38, 1.8-2.8 and 27-33 ms. Under DDP every process runs this on
identical all-reduced values, with dot products whose bits do not depend on the thread count,
so all take the same steps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Minimum", "dot", "minimize"]

EPS = float(torch.finfo(torch.float64).eps)
STEP_MAX = 1e10  # L-BFGS-B's bound on a step without bounds on the unknowns
GRAIN = 32768  # torch splits a reduction over threads from this many elements (GRAIN_SIZE)
ROW = 4096  # dot's rows, each below the grain


@dataclass
class Minimum:
    """Where :func:`minimize` stopped: ``x``, ``f`` there, ``n_iter`` iterations, ``n_eval``
    evaluations, ``converged`` (a gradient or decrease test, not a limit or a failed search)."""

    x: torch.Tensor
    f: float
    n_iter: int
    n_eval: int
    converged: bool


def minimize(
    fun: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    x0: torch.Tensor,
    max_iter: int,
    gtol: float,
    ftol: float = 64 * EPS,
    m: int = 10,
    maxls: int = 50,
    maxfun: int = 15000,
) -> Minimum:
    """Minimize ``fun`` (``x -> (f, gradient)``, float64) from ``x0`` (not modified)."""
    x = x0.clone()
    f, g = fun(x)
    n_eval, n_iter = 1, 0
    if float(g.abs().max()) <= gtol:
        return Minimum(x, f, 0, n_eval, True)
    pairs: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque(maxlen=m)
    while True:
        d = _direction(g, pairs)
        slope = dot(g, d)
        if slope >= 0:  # rounding made it no descent direction: start again from -g
            if not pairs:
                return Minimum(x, f, n_iter, n_eval, False)
            pairs.clear()
            continue
        step = min(1.0 / math.sqrt(dot(d, d)), STEP_MAX) if n_iter == 0 else 1.0
        search = _LineSearch(f, slope, step)
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            n_eval += 1
            done, step = search.next(step, f_new, dot(g_new, d))
            if done or search.evaluations >= maxls:
                break
        if not done:
            if not pairs:
                return Minimum(x, f, n_iter, n_eval, False)
            pairs.clear()
            continue
        n_iter += 1
        s, y, f_old = x_new - x, g_new - g, f
        x, f, g = x_new, f_new, g_new
        if n_iter >= max_iter or n_eval > maxfun:
            return Minimum(x, f, n_iter, n_eval, False)
        if float(g.abs().max()) <= gtol or f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return Minimum(x, f, n_iter, n_eval, True)
        sy = dot(s, y)
        if sy > EPS * -slope * search.accepted:
            pairs.append((s, y, 1.0 / sy))


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``a . b`` (float64), the same bits whatever the thread count: every process of a DDP fit
    must take the same steps. ``torch.dot`` and ``sum`` split a long reduction over threads (at
    1,025,000 unknowns both changed bits between 1 and 2 threads); here rows of :data:`ROW`
    are summed one thread each, then the row sums in order, and a vector below
    :data:`GRAIN` in one sum."""
    a, b = a.flatten(), b.flatten()
    if len(a) <= GRAIN:  # one thread sums it
        return float((a * b).sum())
    whole = len(a) // ROW * ROW
    rows = (a[:whole].view(-1, ROW) * b[:whole].view(-1, ROW)).sum(1)
    return float(rows.sum() + (a[whole:] * b[whole:]).sum())


def _direction(g: torch.Tensor, pairs: deque[tuple[torch.Tensor, torch.Tensor, float]]) -> torch.Tensor:
    """``-H g`` by the two-loop recursion over ``pairs`` (oldest first); ``-g`` without pairs."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * dot(s, q)
        q.add_(y, alpha=-alpha)
        alphas.append(alpha)
    if pairs:
        s, y, _ = pairs[-1]
        q.mul_(dot(s, y) / dot(y, y))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = rho * dot(y, q)
        q.add_(s, alpha=alpha - beta)
    return q.neg_()


class _LineSearch:
    """Moré and Thuente's line search (ACM TOMS 20, 1994) along a descent direction, step by step:
    :meth:`next` takes ``f`` and the slope at the step just tried and says whether to stop there,
    else which step to try next."""

    FTOL, GTOL, XTOL = 1e-3, 0.9, 0.1
    XTRAPL, XTRAPU = 1.1, 4.0

    def __init__(self, f0: float, slope0: float, step: float) -> None:
        self.f0, self.slope0 = f0, slope0
        self.test_slope = self.FTOL * slope0
        self.bracketed, self.stage = False, 1
        self.width = STEP_MAX
        self.width1 = 2 * self.width
        # the best step so far (x) and the other end of the interval (y): step, f, slope
        self.x = (0.0, f0, slope0)
        self.y = (0.0, f0, slope0)
        self.low, self.high = 0.0, step + self.XTRAPU * step
        self.evaluations = 0
        self.accepted = step

    def next(self, step: float, f: float, slope: float) -> tuple[bool, float]:
        """``(stop, step)``: stop at ``step`` (tried, with ``f`` and ``slope``), or try ``step``."""
        self.evaluations += 1
        self.accepted = step
        f_test = self.f0 + step * self.test_slope
        if self.stage == 1 and f <= f_test and slope >= 0:
            self.stage = 2
        if (
            (self.bracketed and (step <= self.low or step >= self.high))
            or (self.bracketed and self.high - self.low <= self.XTOL * self.high)
            or (step == STEP_MAX and f <= f_test and slope <= self.test_slope)
            or (f <= f_test and abs(slope) <= self.GTOL * -self.slope0)
        ):
            return True, step  # converged, or a warning: L-BFGS-B takes the step either way
        if self.stage == 1 and f <= self.x[1] and f > f_test:
            # the modified function psi(step) = f - f0 - ftol * step * slope0 until it is <= 0
            t = self.test_slope
            x, y = self.x, self.y
            self.x, self.y, step = _step(
                (x[0], x[1] - x[0] * t, x[2] - t),
                (y[0], y[1] - y[0] * t, y[2] - t),
                (step, f - step * t, slope - t),
                self,
            )
            self.x = (self.x[0], self.x[1] + self.x[0] * t, self.x[2] + t)
            self.y = (self.y[0], self.y[1] + self.y[0] * t, self.y[2] + t)
        else:
            self.x, self.y, step = _step(self.x, self.y, (step, f, slope), self)
        if self.bracketed:
            if abs(self.y[0] - self.x[0]) >= 0.66 * self.width1:
                step = self.x[0] + 0.5 * (self.y[0] - self.x[0])
            self.width1, self.width = self.width, abs(self.y[0] - self.x[0])
            self.low, self.high = min(self.x[0], self.y[0]), max(self.x[0], self.y[0])
        else:
            self.low = step + self.XTRAPL * (step - self.x[0])
            self.high = step + self.XTRAPU * (step - self.x[0])
        step = min(max(step, 0.0), STEP_MAX)
        if (self.bracketed and (step <= self.low or step >= self.high)) or (
            self.bracketed and self.high - self.low <= self.XTOL * self.high
        ):
            step = self.x[0]
        return False, step


Point = tuple[float, float, float]  # step, f, slope


def _step(x: Point, y: Point, p: Point, search: _LineSearch) -> tuple[Point, Point, float]:
    """Moré and Thuente's safeguarded step from the interval's ends ``x`` (the best) and ``y`` and
    the point ``p`` just tried: the new ends and the next step (cubic and quadratic fits, kept
    inside ``search.low .. search.high``); marks ``search.bracketed`` once a minimizer is."""
    (sx, fx, dx), (sy, fy, dy), (sp, fp, dp) = x, y, p
    low, high, bracketed = search.low, search.high, search.bracketed
    sign = dp * math.copysign(1.0, dx)
    if fp > fx:  # a higher value: the minimizer lies between
        theta = 3 * (fx - fp) / (sp - sx) + dx + dp
        gamma = _root(theta, dx, dp, negate=sp < sx)
        cubic = sx + ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp) * (sp - sx)
        quadratic = sx + ((dx / ((fx - fp) / (sp - sx) + dx)) / 2) * (sp - sx)
        new = cubic if abs(cubic - sx) < abs(quadratic - sx) else cubic + (quadratic - cubic) / 2
        bracketed = True
    elif sign < 0:  # slopes of opposite signs: the minimizer lies between
        theta = 3 * (fx - fp) / (sp - sx) + dx + dp
        gamma = _root(theta, dx, dp, negate=sp > sx)
        cubic = sp + ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx) * (sx - sp)
        secant = sp + (dp / (dp - dx)) * (sx - sp)
        new = cubic if abs(cubic - sp) > abs(secant - sp) else secant
        bracketed = True
    elif abs(dp) < abs(dx):  # the slope's magnitude decreases
        theta = 3 * (fx - fp) / (sp - sx) + dx + dp
        gamma = _root(theta, dx, dp, negate=sp > sx)
        r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
        # no minimizer of the cubic on the far side: the interval's end
        cubic = sp + r * (sx - sp) if r < 0 and gamma != 0 else (high if sp > sx else low)
        secant = sp + (dp / (dp - dx)) * (sx - sp)
        if bracketed:
            new = cubic if abs(cubic - sp) < abs(secant - sp) else secant
            bound = sp + 0.66 * (sy - sp)
            new = min(bound, new) if sp > sx else max(bound, new)
        else:
            new = cubic if abs(cubic - sp) > abs(secant - sp) else secant
            new = max(low, min(high, new))
    elif bracketed:  # the slope's magnitude does not decrease: fit the other end
        theta = 3 * (fp - fy) / (sy - sp) + dy + dp
        gamma = _root(theta, dy, dp, negate=sp > sy)
        new = sp + ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy) * (sy - sp)
    else:
        new = high if sp > sx else low
    if fp > fx:
        y = p
    else:
        if sign < 0:
            y = x
        x = p
    search.bracketed = bracketed
    return x, y, new


def _root(theta: float, da: float, db: float, negate: bool) -> float:
    """The cubic fit's ``gamma``: ``s * sqrt((theta / s)^2 - (da / s)(db / s))``, ``s`` the
    largest magnitude (against overflow), signed by the ends' order; a radicand that rounding
    took below zero counts as zero."""
    s = max(abs(theta), abs(da), abs(db))
    gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (da / s) * (db / s)))
    return -gamma if negate else gamma
