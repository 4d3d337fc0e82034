"""Errors a user can fix; the CLI prints their message instead of a traceback."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetNotFoundError",
    "DownloadError",
    "ModelNotFoundError",
    "UserError",
]


class UserError(Exception):
    """A problem with the user's input or environment, with a message saying what to do."""


class DownloadError(UserError, RuntimeError):
    """A checkpoint or dataset could not be fetched, or what arrived is not what was expected."""


class CheckpointError(UserError, ValueError):
    """A file is not a readable CLIP checkpoint."""


class ModelNotFoundError(UserError, RuntimeError):
    """A model name that is neither published nor a file."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The data of a dataset is not where it was looked for."""


class ConfigError(UserError, ValueError):
    """An option value that cannot work (unknown dataset, wrong number of class names, ...)."""
