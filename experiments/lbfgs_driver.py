"""The L-BFGS driver's own cost per iteration: the probe's (probe/lbfgs.py) against scipy's L-BFGS-B.

    python experiments/lbfgs_driver.py [--sizes 7690 76900 1025000] [--iterations 40] [--device cpu]

Both minimize the same cheap function (a diagonal quadratic, seeded) from the same start with
scikit-learn's options, so nearly all of the time is the driver's: scipy's on the host in
numpy (one BLAS thread, as the probe ran it), ours in torch on ``--device``. The sizes are the
probe's unknowns, K x (D + 1): the CIFAR-10 subset's 10 x 769, the CIFAR-100 size's 100 x 769,
ImageNet's 1,000 x 1,025. Prints milliseconds per iteration, the ratio, and whether both made
the same iterations and evaluations.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.optimize
import torch
from threadpoolctl import threadpool_limits

from clip_lightning.probe.lbfgs import minimize


def measure(size: int, iterations: int, device: str) -> str:
    """One size: scipy's and our milliseconds per iteration, the ratio, the counts."""
    rng = np.random.default_rng(0)
    curvature, center = rng.uniform(1e-3, 1.0, size), rng.standard_normal(size)
    options = {"maxiter": iterations, "gtol": 1e-12, "ftol": 64 * np.finfo(float).eps, "maxls": 50}

    def on_host(x: np.ndarray) -> tuple[float, np.ndarray]:
        g = curvature * (x - center)
        return float(0.5 * g @ (x - center)), g

    with threadpool_limits(1, user_api="blas"):
        start = time.perf_counter()
        ref = scipy.optimize.minimize(on_host, np.zeros(size), method="L-BFGS-B", jac=True, options=options)
        scipy_s = (time.perf_counter() - start) / ref.nit
    h, c = torch.from_numpy(curvature).to(device), torch.from_numpy(center).to(device)

    def on_device(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        g = h * (x - c)
        return float(0.5 * (g * (x - c)).sum()), g

    start = time.perf_counter()
    ours = minimize(on_device, torch.zeros(size, dtype=torch.float64, device=device), iterations, 1e-12)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    ours_s = (time.perf_counter() - start) / ours.n_iter
    same = (ours.n_iter, ours.n_eval) == (ref.nit, ref.nfev)
    return (
        f"{size:>9} {scipy_s * 1e3:13.3f} {ours_s * 1e3:12.3f} {scipy_s / ours_s:5.1f}x  {same} "
        f"({ours.n_iter}/{ours.n_eval} against {ref.nit}/{ref.nfev})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[7_690, 76_900, 1_025_000])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print(
        f"{'unknowns':>9} {'scipy ms/iter':>13} {'ours ms/iter':>12} {'ratio':>6}  same iterations and evaluations"
    )
    for size in args.sizes:
        print(measure(size, args.iterations, args.device), flush=True)


if __name__ == "__main__":
    main()
