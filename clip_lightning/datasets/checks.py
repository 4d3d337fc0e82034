"""Unreadable image files: found when a split is built, before any work, the same on every process."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UnreadableImageError
from .images import find_unreadable
from .samples import ImageFiles, LabeledImages
from .wds import WdsLabeled

__all__ = ["ImageCheck"]


@dataclass
class ImageCheck:
    """Checks the image files of each official split once, when it is loaded (``build_split``'s ``check``).

    Attributes:
        dataset: the dataset's name, for messages.
        decode: decode every image (finds truncated files too; costs one read of the split);
            otherwise only headers are read (empty files, other kinds of file, unknown formats).
        skip: drop unreadable files from their split (always decoding first: what is dropped is
            decided from the files alone, so every process drops the same); otherwise
            :meth:`raise_unreadable` raises.
        workers: threads reading files.
        problems: ``(split, path, reason)`` of every unreadable file found, in load order.
    """

    dataset: str
    decode: bool = False
    skip: bool = False
    workers: int = 1
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    _checked: dict[str, LabeledImages] = field(default_factory=dict, repr=False)

    def __call__(self, data: LabeledImages, split: str) -> LabeledImages:
        """``data`` (official split ``split``) checked, without its unreadable files when skipping."""
        if split in self._checked:  # val is carved from train: check train's files once
            return self._checked[split]
        if isinstance(data, ImageFiles):
            bad = find_unreadable(data.files, self.decode or self.skip, self.workers)
            self.problems += [(split, path, why) for path, why in bad]
            dropped = {path for path, _ in bad} if self.skip else set()
            data = data.select([i for i, path in enumerate(data.files) if path not in dropped], split)
        elif isinstance(data, WdsLabeled):  # samples in tar shards, named SHARD.tar/KEY
            bad = data.unreadable(self.decode or self.skip, self.workers)
            self.problems += [(split, name, why) for name, why in bad]
            if self.skip and bad:
                data = data.without({name for name, _ in bad})
        self._checked[split] = data
        return data

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(split, path)`` of every file dropped (empty unless ``skip``)."""
        return [(split, path) for split, path, _ in self.problems] if self.skip else []

    def raise_unreadable(self) -> None:
        """UnreadableImageError naming the unreadable files found (all of them after decoding)."""
        if self.skip or not self.problems:
            return
        split, path, why = self.problems[0]
        count = len(self.problems)
        if not self.decode:
            if count == 1:
                raise UnreadableImageError(
                    f"{self.dataset} ({split}): cannot read image {path} ({why}); replace or delete it, "
                    "or pass --data.skip_bad_images true to skip unreadable images"
                )
            raise UnreadableImageError(
                f"{self.dataset}: {count} unreadable images, the first {path} in {split} ({why}); "
                "--data.verify true lists them all, --data.skip_bad_images true skips them"
            )
        listing = "".join(f"\n  {split}: {path} ({why})" for split, path, why in self.problems)
        them = "them" if count > 1 else "it"
        raise UnreadableImageError(
            f"{self.dataset}: {count} unreadable image{'s' if count > 1 else ''}; replace or delete {them}, "
            f"or pass --data.skip_bad_images true to skip {them}:{listing}"
        )
