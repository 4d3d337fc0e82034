"""CLIP's curated class names and prompt templates (package data), and user-supplied ones."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_TEMPLATES", "dataset_prompts", "known_prompt_datasets", "read_list"]

# For image folders without templates of their own.
DEFAULT_TEMPLATES = ["a photo of a {}."]


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("clip_lightning").joinpath("datasets").joinpath("prompts.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def known_prompt_datasets() -> list[str]:
    return sorted(_table())


def dataset_prompts(dataset: str) -> tuple[list[str], list[str]]:
    """``(classnames, templates)`` CLIP used for ``dataset`` (from OpenAI's prompts.md)."""
    entry = _table().get(dataset)
    if entry is None:
        raise KeyError(f"no prompts for {dataset!r}; known: {known_prompt_datasets()}")
    return list(entry["classnames"]), list(entry["templates"])


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
