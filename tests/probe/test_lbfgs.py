"""The probe's L-BFGS against scipy's L-BFGS-B (the driver scikit-learn's lbfgs solver calls)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from clip_lightning.probe.lbfgs import dot, minimize


def scipy_fit(fun, x0: np.ndarray, max_iter: int, gtol: float):
    """scipy with scikit-learn's options, counting evaluations."""
    return scipy.optimize.minimize(
        lambda x: (lambda f, g: (f, g.numpy()))(*fun(torch.from_numpy(x))),
        x0,
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "gtol": gtol, "ftol": 64 * np.finfo(float).eps, "maxls": 50},
    )


def logistic(n: int = 120, d: int = 12, k: int = 4, C: float = 1.0, seed: int = 0):
    """scikit-learn's scaled multinomial objective on random separable-ish rows, over theta
    ``[K, D + 1]`` flattened (biases last in each row)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = (
        torch.randn(n, d, generator=g, dtype=torch.float64)
        + 2 * torch.randn(k, d, generator=g, dtype=torch.float64)[y]
    )
    penalty = 1 / (C * n)

    def fun(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        w = theta.view(k, d + 1)
        log_p = torch.log_softmax(x @ w[:, :d].T + w[:, d], dim=1)
        loss = -log_p[torch.arange(n), y].mean() + 0.5 * penalty * w[:, :d].square().sum()
        residual = log_p.exp()
        residual[torch.arange(n), y] -= 1
        grad = torch.cat([residual.T @ x / n + penalty * w[:, :d], residual.sum(0)[:, None] / n], dim=1)
        return float(loss), grad.flatten()

    return fun, k * (d + 1)


def rosenbrock(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
    a, b = theta[:-1], theta[1:]
    f = (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()
    grad = torch.zeros_like(theta)
    grad[:-1] += -400 * a * (b - a**2) - 2 * (1 - a)
    grad[1:] += 200 * (b - a**2)
    return float(f), grad


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_a_converging_fit_takes_scipys_iterations_and_evaluations(C: float) -> None:
    fun, size = logistic(C=C)
    ours = minimize(fun, torch.zeros(size, dtype=torch.float64), max_iter=1000, gtol=1e-4)
    ref = scipy_fit(fun, np.zeros(size), 1000, 1e-4)
    assert ref.status == 0 and ours.converged
    assert (ours.n_iter, ours.n_eval) == (ref.nit, ref.nfev)
    np.testing.assert_allclose(ours.x.numpy(), ref.x, rtol=0, atol=1e-9)
    assert ours.f == pytest.approx(ref.fun, rel=1e-12)


def test_max_iter_stops_unconverged_where_scipy_does() -> None:
    fun, size = logistic(C=100.0)
    ours = minimize(fun, torch.zeros(size, dtype=torch.float64), max_iter=15, gtol=1e-10)
    ref = scipy_fit(fun, np.zeros(size), 15, 1e-10)
    assert ref.status == 1 and not ours.converged
    assert (ours.n_iter, ours.n_eval) == (15, ref.nfev)
    np.testing.assert_allclose(ours.x.numpy(), ref.x, rtol=0, atol=1e-9)


def test_a_curved_valley_takes_scipys_line_searches() -> None:
    # Rosenbrock's valley makes the line search bracket, extrapolate and interpolate
    x0 = torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64)
    ours = minimize(rosenbrock, x0, max_iter=1000, gtol=1e-8)
    ref = scipy_fit(rosenbrock, x0.numpy(), 1000, 1e-8)
    assert ours.converged and ref.status == 0
    assert (ours.n_iter, ours.n_eval) == (ref.nit, ref.nfev)
    np.testing.assert_allclose(ours.x.numpy(), ref.x, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours.x.numpy(), np.ones(4), atol=1e-6)
    assert torch.equal(x0, torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64))  # not modified


def test_a_start_that_meets_the_tolerance_is_the_answer() -> None:
    fun, size = logistic()
    start = minimize(fun, torch.zeros(size, dtype=torch.float64), max_iter=1000, gtol=1e-4).x
    again = minimize(fun, start, max_iter=1000, gtol=1e-4)
    assert (again.n_iter, again.n_eval, again.converged) == (0, 1, True)
    assert torch.equal(again.x, start)


def test_dot_has_the_same_bits_whatever_the_thread_count() -> None:
    # ImageNet's 1,000 x 1,025 unknowns: torch.dot's bits changed between 1 and 2 threads there
    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    for size in (7_690, 1_025_000):  # one sum; rows
        a, b = (torch.randn(size, generator=g, dtype=torch.float64) for _ in range(2))
        try:
            results = []
            for count in (1, 2, 4):
                torch.set_num_threads(count)
                results.append(dot(a, b))
        finally:
            torch.set_num_threads(threads)
        assert results[0] == results[1] == results[2]
        assert results[0] == pytest.approx(float((a * b).sum()), rel=1e-12)
