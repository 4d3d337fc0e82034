"""Prints docs/datasets.md: ``python -m clip_lightning.datasets > docs/datasets.md``."""

from __future__ import annotations

import sys

from .docs import datasets_markdown

sys.stdout.write(datasets_markdown())
