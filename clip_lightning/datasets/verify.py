"""Preflight: ``python -m clip_lightning.datasets.verify DATASET --root ROOT`` lists unreadable images.

Decodes every image file of the dataset's official splits (no model, no run) and prints one line per
unreadable file; exit code 0 when all decode, 1 when some do not, 2 for a dataset that cannot be read
at all (wrong root, class folders that disagree), with the message saying what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import UserError
from .checks import ImageCheck
from .registry import get_dataset_info
from .splits import build_split

__all__ = ["main", "unreadable_images"]


def unreadable_images(dataset: str, root: str, workers: int = 1) -> list[tuple[str, str, str]]:
    """``(split, path, reason)`` of every image file of ``dataset``'s official splits that does not decode."""
    check = ImageCheck(dataset, decode=True, workers=workers)
    # A dataset without splits is loaded whole ("all") by its test split.
    for split in get_dataset_info(dataset).official_splits(root) or ("test",):
        build_split(dataset, root, split, False, 0.1, 0, check=check)
    return list(check.problems)


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m clip_lightning.datasets.verify", description=__doc__)
    parser.add_argument("dataset", help="a --data.dataset name, e.g. imagefolder")
    parser.add_argument("--root", default="data", help="what --data.root would be (default: data)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="reading threads")
    args = parser.parse_args(argv)
    try:
        problems = unreadable_images(args.dataset, args.root, max(1, args.workers))
    except UserError as err:
        print(f"verify: error: {err}", file=sys.stderr)
        return 2
    for split, path, why in problems:
        print(f"{split}: {path} ({why})")
    summary = f"{len(problems)} unreadable image files" if problems else "every image file decodes"
    print(f"{args.dataset} under {args.root}: {summary}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
