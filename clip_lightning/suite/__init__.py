"""Sweeps: every model on every dataset (``clip-lightning suite``), one results file per run, a table."""

from __future__ import annotations

from .collections import COLLECTIONS, expand_datasets
from .plan import Run, plan_runs
from .reference import published
from .runner import Outcome, RunOptions, run_sweep
from .table import write_tables

__all__ = [
    "COLLECTIONS",
    "Outcome",
    "Run",
    "RunOptions",
    "expand_datasets",
    "plan_runs",
    "published",
    "run_sweep",
    "write_tables",
]
