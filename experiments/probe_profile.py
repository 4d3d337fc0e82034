"""Where the torch probe's time goes: the products, the rest of the loss and gradient, the rest.

    python experiments/probe_profile.py [--sets digits cifar10-subset cifar100-size]
        [--C C] [--max-iter 1000] [--dtype float32] [--device cpu] [--scale 1.0]

Runs ``linear_probe`` (the paper's C search and the refit, or only the refit at ``--C``) with
the torch solver on the benchmark's features (experiments/probe_benchmark.py) and splits its wall
time into the batched products over the features (``torch.bmm`` in ``probe/rowsums.py``, with
their GFLOPS), the rest of the loss-and-gradient evaluations (softmax, the float64 sums), and
everything else (the L-BFGS driver and its glue, the validation scores,
grouping the rows). The products bound a search's speed: E evaluations cost at least E times
the products' milliseconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from probe_benchmark import DTYPES, REAL, SYNTHETIC, features

from clip_lightning.probe import rowsums, torch_solver
from clip_lightning.probe.protocol import linear_probe


def profile(
    split: dict[str, tuple[torch.Tensor, torch.Tensor]],
    classes: int,
    C: float | None,
    max_iter: int,
    dtype: torch.dtype,
) -> dict[str, float]:
    """A probe's seconds (the search unless ``C`` is given, then the refit): ``total``, in the loss
    and gradient (``evaluations``), in their ``products``; with ``iterations``, ``fits``,
    ``evaluation_count`` and the products' ``flops``."""
    cuda = split["train"][0].is_cuda
    spent = dict.fromkeys(["products", "evaluations", "flops", "evaluation_count"], 0.0)
    bmm, loss_and_gradient = torch.bmm, torch_solver.loss_and_gradient

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def timed_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        start = now()
        out = bmm(a, b)
        spent["products"] += now() - start
        spent["flops"] += 2.0 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        return out

    def timed_sums(chunks: rowsums.RowChunks, theta: torch.Tensor) -> torch.Tensor:
        start = now()
        out = loss_and_gradient(chunks, theta)
        spent["evaluations"] += now() - start
        spent["evaluation_count"] += 1
        return out

    torch_solver.loss_and_gradient = timed_sums
    rowsums.torch.bmm = timed_bmm  # type: ignore[assignment]
    try:
        start = now()
        result = linear_probe(split["train"], split["val"], split["test"], classes, C=C, max_iter=max_iter)
        spent["total"] = now() - start
    finally:
        rowsums.torch.bmm = bmm
        torch_solver.loss_and_gradient = loss_and_gradient
    spent["iterations"] = sum(fit["n_iter"] for fit in result.fits)
    spent["fits"] = len(result.fits)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=["digits", "cifar10-subset", "cifar100-size"])
    parser.add_argument("--C", type=float, default=None, help="fit only this C (default: search)")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the synthetic sets' rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--features", type=Path, default=Path("runs/probe_features"))
    args = parser.parse_args()
    unknown = [name for name in args.sets if name not in SYNTHETIC and name not in REAL]
    if unknown:
        parser.error(f"--sets {' '.join(unknown)}: choose from {sorted(REAL) + sorted(SYNTHETIC)}")
    torch.set_num_threads(args.threads)
    what = "the search and refit" if args.C is None else f"a fit at C {args.C:g}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, {what}")
    print(
        f"{'set':16} {'train x dims x classes':24} {'fits':>4} {'iters':>6} {'evals':>6} {'total s':>8} "
        f"{'products s':>10} {'GFLOPS':>6} {'rest of evals s':>15} {'other s':>7} {'ms/eval':>8} {'products ms/eval':>16}"
    )
    for name in args.sets:
        data = features(name, args.scale, args.features)
        split = {
            part: (
                torch.from_numpy(data[f"{part}_x"]).to(args.device),
                torch.from_numpy(data[f"{part}_y"]).to(args.device),
            )
            for part in ("train", "val", "test")
        }
        classes = int(data["train_y"].max()) + 1
        s = profile(split, classes, args.C, args.max_iter, DTYPES[args.dtype])
        n = s["evaluation_count"]
        size = f"{len(data['train_y'])} x {data['train_x'].shape[1]} x {classes}"
        print(
            f"{name:16} {size:24} {int(s['fits']):4d} {int(s['iterations']):6d} {int(n):6d} {s['total']:8.2f} "
            f"{s['products']:10.2f} {s['flops'] / s['products'] / 1e9:6.1f} {s['evaluations'] - s['products']:15.2f} "
            f"{s['total'] - s['evaluations']:7.2f} {s['evaluations'] / n * 1e3:8.2f} {s['products'] / n * 1e3:16.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
