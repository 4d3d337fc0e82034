"""Published zero-shot results of OpenAI's models (package data), to print beside ours.

``openai_models_38_datasets.csv`` is open_clip's ``docs/openclip_results.csv`` (mlfoundations/open_clip)
for OpenAI's nine models on DataComp's 38 datasets, measured with CLIP_benchmark; values are
fractions in DataComp's main metric per dataset.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

from .collections import REFERENCE_COLUMNS

__all__ = ["published", "reference_name"]


@lru_cache(maxsize=1)
def _rows() -> dict[str, dict[str, str]]:
    text = (
        resources.files("clip_lightning.suite").joinpath("openai_models_38_datasets.csv").read_text("utf-8")
    )
    return {row["name"]: row for row in csv.DictReader(io.StringIO(text)) if row["pretrained"] == "openai"}


def reference_name(model: str) -> str:
    """open_clip's name of an OpenAI model (``ViT-B/32`` -> ``ViT-B-32``, ``ViT-L/14@336px`` -> ``ViT-L-14-336``)."""
    return model.replace("@336px", "-336").replace("/", "-")


def published(model: str, dataset: str) -> float | None:
    """The published number of OpenAI's ``model`` on ``dataset``, or None where there is none."""
    row = _rows().get(reference_name(model))
    column = REFERENCE_COLUMNS.get(dataset)
    if row is None or column is None or not row.get(column):
        return None
    return float(row[column])
