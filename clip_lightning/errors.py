"""Errors a user can fix; the CLI prints their message instead of a traceback."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ClassFolderError",
    "ConfigError",
    "DatasetNotFoundError",
    "DownloadError",
    "ModelNotFoundError",
    "UnreadableImageError",
    "UserError",
    "WebDatasetError",
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


class ClassFolderError(UserError, ValueError):
    """Class folders that cannot work: splits whose classes disagree, a class folder without images."""


class WebDatasetError(UserError, ValueError):
    """A WebDataset folder that cannot be read as laid out (missing shards, samples without a label)."""


class UnreadableImageError(UserError, OSError):
    """An image file that cannot be decoded (truncated, empty, not an image)."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises an error in the main process as ``type(err)(text)`` with
        # its whole traceback in ``text``; its last line holds the one-line message to show.
        if message.startswith("Caught ") and "Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)

    @classmethod
    def naming(cls, image: str, split: str | None, err: Exception, remedy: str = "") -> UnreadableImageError:
        """The one-line error for ``image`` (of ``split``) that ``err`` could not decode; ``remedy``
        comes before the advice to skip unreadable images."""
        where = f" of the {split} split" if split else ""
        reason = " ".join(str(err).split())
        return cls(
            f"cannot read image {image}{where} ({type(err).__name__}: {reason}); {remedy}pass "
            "--data.skip_bad_images true to check every image first and skip unreadable ones"
        )
