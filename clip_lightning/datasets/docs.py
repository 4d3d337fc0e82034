"""docs/datasets.md, generated from the registry."""

from __future__ import annotations

from .prompts import dataset_prompts, known_prompt_datasets
from .registry import DATASETS, DatasetInfo

__all__ = ["GENERATE_COMMAND", "datasets_markdown"]

GENERATE_COMMAND = "python -m clip_lightning.datasets > docs/datasets.md"


def _row(info: DatasetInfo) -> str:
    if info.splits_found is not None:
        splits = "the folders present among " + ", ".join(info.splits)
    else:
        splits = ", ".join(info.splits) or "none (test: 20% held out)"
    if info.prompts is not None and info.prompts in known_prompt_datasets():
        classes = str(len(dataset_prompts(info.prompts)[0]))
    else:
        classes = "from the data"
    download = "yes" if info.download else "no"
    source = f"<{info.source}>" if "://" in info.source else f"`{info.source}`"
    cells = [f"`{info.name}`", splits, classes, info.main_metric, download, info.description, source]
    return "| " + " | ".join(cells) + " |"


def datasets_markdown() -> str:
    """The table of every registered dataset, as committed in docs/datasets.md."""
    lines = [
        "# Datasets",
        "",
        f"<!-- Generated from clip_lightning/datasets/catalog.py; do not edit. Regenerate: {GENERATE_COMMAND} -->",
        "",
        "`--data.dataset` takes one of these names. Missing official splits are carved out, seeded "
        "(`--data.split_seed`): val as `--data.val_fraction` of the official train split, and for a "
        "dataset without any split, test as 20% of the whole set.",
        "",
        "| name | official splits | classes | main metric | download | description | source |",
        "|---|---|---|---|---|---|---|",
        *(_row(info) for info in DATASETS.values()),
    ]
    return "\n".join(lines) + "\n"
