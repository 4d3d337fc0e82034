"""The linear probe's whole C search: scikit-learn (the reference) against the torch solver.

    python experiments/probe_benchmark.py [--sets digits cifar10-subset cifar100-size]
        [--dtypes float32 float64] [--sklearn-subsample N] [--threads 2] [--no-floor] [--per-c]
        [--starts warm cold]
    python experiments/probe_benchmark.py --sets imagenet-size --dtypes float32 --device cuda

Same features for both: random-weight ViT-B/32 penultimate features (768 dims) of the bundled
digits and of ``../shared/data/cifar10-subset`` (experiments/probe_features.py, cached under
runs/probe_features), and synthetic features the size of CIFAR-100 (50,000 train + 5,000 val
+ 10,000 test x 768, 100 classes: Gaussian class means plus noise, seeded). Each solver runs
the paper's search (``linear_probe``: every second decade, halving to 1/8 decade, refit on
train + val) and prints sizes, wall seconds, the ratio (scikit-learn's total seconds over the
row's, on the same rows), the chosen C, validation and test top-1.

Agreement (the real feature sets): at each C that scikit-learn's search visited, the share of
test predictions equal to scikit-learn's (over the Cs where scikit-learn converged, i.e. stopped
before max_iter) and the largest test top-1 gap (points), per torch dtype. The row
``sklearn reordered`` is the reference's own floor: scikit-learn's search on the same train rows
in another order (seeded), the same objective up to rounding, scored against scikit-learn the
same way. ``--no-floor`` skips it (it costs a second scikit-learn search). ``--per-c`` prints
each C's count of test predictions unlike scikit-learn's, for every row, so that one can see at
which Cs a torch fit and scikit-learn's own reordered fit each part from scikit-learn.
``--starts warm cold`` adds rows of the torch search with ``warm_start=False`` (``cold``: every
fit from zeros, scikit-learn's path).

``--sklearn-subsample N``: on a synthetic set scikit-learn's search runs on N train samples
only, and the torch solver on all of them *and* on the same N (the table says which is which).
The default, 0, runs both on all 50,000 of the CIFAR-100 size: these synthetic classes separate
easily, and scikit-learn's whole search took 57.2 s on 2 cores (126 iterations over 16 fits).

``imagenet-size`` (1,271,167 train + 10,000 val / 50,000 test x 1,024 x 1,000, the same kind
of synthetic features, 5.3 GB in float32) is for a GPU (``--device cuda``; the issue's target
is the whole search in under 30 minutes). scikit-learn runs on it only with
``--sklearn-subsample``. On a CPU it is refused unless ``--scale`` (the synthetic sets' share of
rows) is at most 0.05: ``--scale 0.01 --device cpu`` runs the same code on 1% of the rows.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clip_lightning.probe.protocol import linear_probe
from clip_lightning.probe.sklearn_solver import fit_logistic as fit_sklearn
from clip_lightning.probe.sklearn_solver import topk_classes as sklearn_topk
from clip_lightning.probe.torch_solver import fit_logistic, warm_start
from clip_lightning.probe.torch_solver import topk_classes as torch_topk

DTYPES = {"float32": torch.float32, "float64": torch.float64}
REAL = ("digits", "cifar10-subset")  # random-weight ViT-B/32 features: experiments/probe_features.py


# name: (train, val, test, dims, classes); ImageNet: its 1,281,167 train images less a 10,000
# validation hold-out, its 50,000 val images as the test split, RN50's 1,024 dims
SYNTHETIC = {
    "cifar100-size": (50_000, 5_000, 10_000, 768, 100),
    "imagenet-size": (1_271_167, 10_000, 50_000, 1024, 1000),
}


def synthetic(
    n_train: int = 50_000, n_val: int = 5_000, n_test: int = 10_000, dims: int = 768, classes: int = 100
):
    """Class means on a sphere plus isotropic noise (seed 0), float32, drawn a block of rows at a
    time (the same numbers as one draw) so that ImageNet's size needs no float64 copy."""
    rng = np.random.default_rng(0)
    means = rng.standard_normal((classes, dims)).astype(np.float32) * 0.15

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        x = np.empty((n, dims), dtype=np.float32)
        for low in range(0, n, 1 << 16):
            high = min(n, low + (1 << 16))
            x[low:high] = means[y[low:high]] + rng.standard_normal((high - low, dims)).astype(np.float32)
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = draw(n_train), draw(n_val), draw(n_test)
    return {"train_x": xt, "train_y": yt, "val_x": xv, "val_y": yv, "test_x": xs, "test_y": ys}


def features(name: str, scale: float, root: Path) -> dict[str, np.ndarray]:
    """``{train,val,test}_{x,y}`` of ``name``: real features (cached under ``root``), or synthetic
    ones with ``scale`` of the set's rows."""
    if name in REAL:
        from probe_features import extract

        return extract(name, root)
    n_train, n_val, n_test, dims, k = SYNTHETIC[name]
    return synthetic(*(max(k, round(n * scale)) for n in (n_train, n_val, n_test)), dims, k)


def run(
    data: dict[str, np.ndarray],
    solver: str,
    dtype: torch.dtype,
    classes: int,
    max_iter: int,
    device: str = "cpu",
    warm: bool = True,
) -> dict[str, Any]:
    models: dict[float, Any] = {}
    split = {s: (data[f"{s}_x"], data[f"{s}_y"]) for s in ("train", "val", "test")}
    if solver == "torch":  # the features where a LinearProbe would hold them: the trainer's device
        split = {
            s: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for s, (x, y) in split.items()
        }
    start = time.perf_counter()
    result = linear_probe(
        split["train"], split["val"], split["test"], classes, max_iter=max_iter, solver=solver,  # type: ignore[arg-type]
        dtype=dtype, on_fit=lambda c, m: models.setdefault(round(float(np.log10(c)), 9), m), warm_start=warm,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    iters = sum(f["n_iter"] for f in result.fits)
    return {"result": result, "seconds": seconds, "models": models, "iters": iters, "max_iter": max_iter}


def agreement(
    data: dict[str, np.ndarray], ref: dict[str, Any], ours: dict[str, Any], fit: Callable[[float, Any], Any]
):
    """(share of equal test predictions where sklearn converged, largest |top-1 gap| in points, Cs,
    per C: ``{log10 C: (test predictions unlike scikit-learn's, top-1 gap in points)}``).

    ``fit(exponent, our models)`` fits a C that only scikit-learn's search visited.
    """
    x, y = data["test_x"], data["test_y"]
    equal = total = 0
    gap = 0.0
    per_c: dict[float, tuple[int, float]] = {}
    for exponent, sk in sorted(ref["models"].items()):
        model = ours["models"].get(exponent)
        if model is None:
            model = fit(exponent, ours["models"])
        p_sk = sklearn_topk(sk, x, 1)[:, 0].numpy()
        p_t = (sklearn_topk if hasattr(model, "coef_") else torch_topk)(model, x, 1)[:, 0].numpy()
        gap_c = ((p_t == y).mean() - (p_sk == y).mean()) * 100
        gap = max(gap, abs(gap_c))
        per_c[exponent] = (int((p_sk != p_t).sum()), float(gap_c))
        if int(np.max(sk.n_iter_)) < int(ref["max_iter"]):
            equal += int((p_sk == p_t).sum())
            total += len(y)
    return equal / max(total, 1), gap, len(ref["models"]), per_c


def reordered(data: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """The same train rows in another order: the same objective, summed in another order."""
    order = np.random.default_rng(seed).permutation(len(data["train_y"]))
    return {**data, "train_x": data["train_x"][order], "train_y": data["train_y"][order]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=["digits", "cifar10-subset", "cifar100-size"])
    parser.add_argument("--device", default="cpu", help="where the torch solver's features go, e.g. cuda")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the synthetic sets' rows")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=sorted(DTYPES))
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument(
        "--starts", nargs="+", default=["warm"], choices=["warm", "cold"], help="cold: warm_start=False"
    )
    parser.add_argument("--sklearn-subsample", type=int, default=0)
    parser.add_argument("--features", type=Path, default=Path("runs/probe_features"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the sklearn reordered row"
    )
    parser.add_argument(
        "--per-c", action="store_true", help="also print, per C, how many test predictions differ"
    )
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error(f"--scale {args.scale}: give a fraction of the synthetic sets' rows above 0")
    unknown = [name for name in args.sets if name not in SYNTHETIC and name not in REAL]
    if unknown:
        parser.error(f"--sets {' '.join(unknown)}: choose from {sorted(REAL) + sorted(SYNTHETIC)}")
    if "imagenet-size" in args.sets and args.device == "cpu" and args.scale > 0.05:
        parser.error(
            "--sets imagenet-size needs a GPU (--device cuda): on a CPU its search would take hours. "
            "--scale 0.01 runs it at 1% of the rows."
        )
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} ({where})")
    rows = []
    for name in args.sets:
        real = name in REAL
        data = features(name, args.scale, args.features)
        classes = int(data["train_y"].max()) + 1
        size = f"{len(data['train_y'])}+{len(data['val_y'])}/{len(data['test_y'])} x {data['train_x'].shape[1]} x {classes}"
        sk_data, sk_size = data, size
        if not real and args.sklearn_subsample:
            sk_data = {
                **data,
                "train_x": data["train_x"][: args.sklearn_subsample],
                "train_y": data["train_y"][: args.sklearn_subsample],
            }
            sk_size = f"{size} (train {args.sklearn_subsample})"
        first = len(rows)
        # scikit-learn on ImageNet's size would take days: only on a --sklearn-subsample
        ref = (
            None
            if name == "imagenet-size" and sk_data is data
            else run(sk_data, "sklearn", torch.float64, classes, args.max_iter)
        )
        if ref is not None:
            rows.append((name, sk_size, "sklearn", ref, None))
        if real and args.floor:
            other = reordered(sk_data)
            floor = run(other, "sklearn", torch.float64, classes, args.max_iter)
            agree = agreement(
                sk_data,
                ref,
                floor,
                lambda e, _, o=other: fit_sklearn(o["train_x"], o["train_y"], 10**e, args.max_iter),
            )
            rows.append((name, sk_size, "sklearn reordered", floor, agree))
        for dt, warm in [(dt, start == "warm") for dt in args.dtypes for start in args.starts]:
            label = f"torch {dt}" + ("" if warm else " cold")
            if ref is not None:
                same = run(sk_data, "torch", DTYPES[dt], classes, args.max_iter, args.device, warm)

                def refit(
                    exponent: float, models: dict, dt: str = dt, sk: dict = sk_data, warm: bool = warm
                ) -> Any:
                    # a C only scikit-learn visited: started as our search would have started it
                    return fit_logistic(
                        torch.from_numpy(sk["train_x"]).to(args.device),
                        torch.from_numpy(sk["train_y"]).to(args.device),
                        10**exponent,
                        args.max_iter,
                        init=warm_start(models, exponent) if warm else None,
                        dtype=DTYPES[dt],
                    )

                agree = agreement(sk_data, ref, same, refit) if real else None
                rows.append((name, sk_size, label, same, agree))
            if ref is None or sk_data is not data:
                full = run(data, "torch", DTYPES[dt], classes, args.max_iter, args.device, warm)
                rows.append((name, size, label, full, None))
            print_rows(rows[first:])
        if args.per_c and real and ref is not None:
            print_per_c(rows[first:], ref)
    print("\n## all")
    print_rows(rows)


def print_rows(rows: list) -> None:
    """One line per row; ``ratio``: scikit-learn's total seconds over this row's, on the same rows."""
    head = f"{'set':16} {'size (train+val/test x dims x classes)':44} {'solver':17} {'fits':>4} {'iters':>6} {'search s':>9} {'refit s':>8} {'total s':>8} {'ratio':>6} {'C':>9} {'val top1':>8} {'test top1':>9}  agreement"
    print(head)
    reference = {(name, size): r["seconds"] for name, size, solver, r, _ in rows if solver == "sklearn"}
    for name, size, solver, r, agree in rows:
        res = r["result"]
        val = res.search[round(float(np.log10(res.C)), 9)][0] if res.search else float("nan")
        sk_seconds = reference.get((name, size))
        ratio = f"{sk_seconds / r['seconds']:5.1f}x" if sk_seconds and solver.startswith("torch") else ""
        extra = (
            ""
            if agree is None
            else f"{agree[0] * 100:.2f}% equal predictions, max top-1 gap {agree[1]:.2f} pts over {agree[2]} Cs"
        )
        print(
            f"{name:16} {size:44} {solver:17} {len(res.fits):4d} {r['iters']:6d} {res.search_seconds:9.1f} {res.fit_seconds:8.1f} {r['seconds']:8.1f} {ratio:>6} {res.C:9.4g} {val:8.4f} {res.metrics['lp_acc1']:9.4f}  {extra}",
            flush=True,
        )


def print_per_c(rows: list, ref: dict[str, Any]) -> None:
    """Per C scikit-learn's search visited: its iterations (``*``: stopped at max_iter, not counted
    in the agreement), then per other row the test predictions unlike scikit-learn's (of all) and
    the test top-1 gap (points, that row minus scikit-learn)."""
    others = [(solver, agree[3]) for _, _, solver, _, agree in rows if agree is not None]
    print(f"{'log10 C':>8} {'sklearn iters':>13}  " + "  ".join(f"{solver:>24}" for solver, _ in others))
    for exponent, sk in sorted(ref["models"].items()):
        iters = int(np.max(sk.n_iter_))
        mark = "*" if iters >= int(ref["max_iter"]) else " "
        cells = [f"{per[exponent][0]:>8d} differ {per[exponent][1]:+6.2f} pts" for _, per in others]
        print(f"{exponent:>8.3f} {iters:>12d}{mark}  " + "  ".join(f"{c:>24}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
