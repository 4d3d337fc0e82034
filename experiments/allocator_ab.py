"""The `clip-lightning` command with and without keeping freed memory in the heap.

    python experiments/allocator_ab.py [--runs 3] [--batches 8]

Each run is a fresh process (the allocator setting is process-wide and cannot be undone):
a zero-shot `test` of random ViT-B/32 weights, bf16-mixed, on ../shared/data/cifar10-subset.
Runs alternate between the two settings; prints the wall time of each and the best of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import sys
import clip_lightning.cli as cli
if sys.argv[1] == "default":
    cli.keep_freed_memory = lambda: False
cli.main(sys.argv[2:])
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-subset"))
    parser.add_argument("--out", default="runs/allocator_ab")
    args = parser.parse_args()
    cli_args = ["test", "--data.dataset", "imagefolder", "--data.root", args.data, "--data.num_workers", "0",
                "--model.name", "ViT-B/32", "--model.pretrained", "false", "--model.templates", "cifar10",
                "--trainer.precision", "bf16-mixed", "--trainer.enable_progress_bar", "false",
                "--trainer.logger", "false", "--trainer.limit_test_batches", str(args.batches),
                "--trainer.default_root_dir", args.out]  # fmt: skip
    times: dict[str, list[float]] = {"default": [], "heap kept": []}
    for i in range(args.runs):
        for mode in times:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _RUN, mode.split()[0], *cli_args], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            times[mode].append(time.perf_counter() - start)
            print(f"run {i + 1}, {mode}: {times[mode][-1]:.2f} s")
    best = {mode: min(t) for mode, t in times.items()}
    print(f"best: default {best['default']:.2f} s, heap kept {best['heap kept']:.2f} s, "
          f"x{best['default'] / best['heap kept']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
