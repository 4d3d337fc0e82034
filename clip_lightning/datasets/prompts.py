"""CLIP's curated class names and prompt templates (package data), and user-supplied ones."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import ConfigError

__all__ = [
    "DEFAULT_TEMPLATES",
    "ClassName",
    "class_names_of",
    "dataset_prompts",
    "known_prompt_datasets",
    "read_list",
]

# For image folders without templates of their own.
DEFAULT_TEMPLATES = ["a photo of a {}."]


class ClassName(str):
    """A class with several names (FER2013's "happy" / "smiling"): the string is its first name.

    Everywhere a string is expected (reports, figures, results.json) it is that first name;
    :func:`~clip_lightning.tasks.classifier.build_zero_shot_classifier` ensembles over all of
    ``names`` x templates, as OpenAI did for FER2013. Two ClassNames are equal only when all
    their names are.
    """

    names: tuple[str, ...]

    def __new__(cls, names: list[str] | tuple[str, ...]) -> ClassName:
        if not names:
            raise ValueError("a class needs at least one name")
        self = super().__new__(cls, names[0])
        self.names = tuple(str(n) for n in names)
        return self

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other) is True and self.names == getattr(other, "names", (str(other),))

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__  # equal objects share their first name, so their hash

    def __reduce__(self) -> tuple[type[ClassName], tuple[tuple[str, ...]]]:
        return ClassName, (self.names,)  # pickled to DataLoader workers and DDP processes


def class_names_of(entry: str) -> tuple[str, ...]:
    """Every name of a class entry: ``entry.names`` for a ClassName, else the string itself."""
    return getattr(entry, "names", (entry,))


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("clip_lightning").joinpath("datasets").joinpath("prompts.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def known_prompt_datasets() -> list[str]:
    return sorted(_table())


def dataset_prompts(dataset: str) -> tuple[list[str], list[str]]:
    """``(classnames, templates)`` CLIP used for ``dataset`` (from OpenAI's prompts.md).

    A class that prompts.md names several ways is a :class:`ClassName` holding all of them.
    """
    entry = _table().get(dataset)
    if entry is None:
        raise KeyError(f"no prompts for {dataset!r}; known: {known_prompt_datasets()}")
    names = [ClassName(c) if isinstance(c, list) else c for c in entry["classnames"]]
    return names, list(entry["templates"])


def read_list(spec: str | list[str], what: str) -> list[str]:
    """A list of strings given inline, as a JSON list file, or as a text file (one per line)."""
    if isinstance(spec, list):
        items = [str(s) for s in spec]
    elif os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            text = f.read()
        if spec.endswith(".json"):
            loaded = json.loads(text)
            if not isinstance(loaded, list):
                raise ConfigError(f"{what} file {spec} must hold a JSON list of strings")
            items = [str(s) for s in loaded]
        else:
            items = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        raise ConfigError(f"{what}: {spec!r} is not a file; pass a list or the path of a file")
    if not items:
        raise ConfigError(f"{what} is empty")
    return items
