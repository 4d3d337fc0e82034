"""Peak memory per process of a 2-process linear probe: gathered features against per-process shares.

    python experiments/probe_memory.py [--n-train 50000] [--dims 768] [--classes 100] [--C 0.00075]

Two gloo processes on this CPU, each given its own share of synthetic features the size of
CIFAR-100's (rows ``rank::2``, as a DistributedSampler deals them). ``gathered`` does what
``LinearProbe(shard_features=False)`` does: every split is gathered by index to every process
(``gather_by_index``, as the evaluator's ``gathered``) and rank 0 fits alone. ``sharded``
(``shard_features=True``): every process fits on its own share and all-reduces each step.
Prints, per process, the peak resident memory (VmHWM, reset once the share exists) above what it
held then, and the share's own size.
"""

from __future__ import annotations

import argparse
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clip_lightning.distributed import gather_by_index, local_only
from clip_lightning.probe.protocol import linear_probe


def status_mb(field: str) -> float:
    """``VmHWM`` (peak since :func:`reset_peak`) or ``VmRSS`` (now) of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak to the current size
        f.write("5")


def worker(rank: int, port: int, mode: str, args: argparse.Namespace, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    rng = np.random.default_rng(0)  # the same data on both; each keeps its own rows only
    means = rng.standard_normal((args.classes, args.dims)).astype(np.float32) * 0.15
    shares = {}
    for split, n in (("train", args.n_train), ("val", args.n_train // 10), ("test", args.n_train // 5)):
        y = rng.integers(0, args.classes, n)
        index = torch.arange(rank, n, 2)
        x = means[y[index.numpy()]] + rng.standard_normal((len(index), args.dims)).astype(np.float32)
        shares[split] = (torch.from_numpy(x), torch.from_numpy(y[index.numpy()]), index)
        del x
    share_mb = sum(s[0].numel() * 4 for s in shares.values()) / 2**20
    dist.barrier()
    reset_peak()
    base = status_mb("VmRSS")
    if mode == "sharded":
        # with each row's dataset index, as LinearProbe hands them: a process holds whole groups
        result = linear_probe(*shares.values(), args.classes, C=args.C)  # type: ignore[call-arg]
    else:
        gathered = {}
        for split, (x, y, index) in shares.items():
            _, y_all, x_all = gather_by_index(index, y, x)
            gathered[split] = (x_all, y_all)
        result = None
        if rank == 0:
            with local_only():
                result = linear_probe(*gathered.values(), args.classes, C=args.C)  # type: ignore[call-arg]
        dist.barrier()
    out[(mode, rank)] = (
        share_mb,
        status_mb("VmHWM") - base,
        None if result is None else result.metrics["lp_acc1"],
    )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--C", type=float, default=0.00075)
    args = parser.parse_args()
    out = mp.Manager().dict()
    for mode in ("gathered", "sharded"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(worker, args=(port, mode, args, out), nprocs=2, join=True)
    print(
        f"{args.n_train} train x {args.dims} dims x {args.classes} classes (val n/10, test n/5), 2 gloo processes"
    )
    print(f"{'mode':9} {'rank':>4} {'own share MB':>12} {'peak above share MB':>20} {'test top-1':>10}")
    for (mode, rank), (share, peak, acc) in sorted(out.items()):
        print(f"{mode:9} {rank:4d} {share:12.1f} {peak:20.1f} {'' if acc is None else f'{acc:.4f}':>10}")


if __name__ == "__main__":
    main()
