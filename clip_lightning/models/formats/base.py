"""What every checkpoint format reads into: weights under OpenAI's names, a config, a preprocessing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ...errors import CheckpointError
from ..config import ACTIVATIONS, CHECKPOINT_META_KEYS, CLIPConfig
from ..model import CLIP
from ..transform import OPENAI_MEAN, OPENAI_STD
from .files import content_id

__all__ = ["Architecture", "Checkpoint", "Preprocess", "check_declared", "check_vocabulary", "check_weights"]

VOCAB_SIZE = 49408  # CLIP's BPE: what clip_lightning.tokenize produces ids for


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing of a checkpoint: resize the short side, center crop, normalize."""

    n_px: int
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    resize: int | None = None
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class Architecture:
    """Hyperparameters a user states for bare state dicts (shapes cannot tell them); None: as read."""

    activation: str | None = None
    vision_head_width: int | None = None
    text_heads: int | None = None

    def __post_init__(self) -> None:
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise CheckpointError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        for name in ("vision_head_width", "text_heads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise CheckpointError(f"{name} must be a positive integer, got {value!r}.")

    def apply(self, config: CLIPConfig) -> CLIPConfig:
        """``config`` with every stated hyperparameter replaced."""
        changes: dict[str, object] = {}
        if self.activation is not None:
            changes["activation"] = self.activation
        if self.vision_head_width is not None:
            changes["vision_head_width"] = self.vision_head_width
        if self.text_heads is not None:
            changes["transformer_heads"] = self.text_heads
        return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@dataclass
class Checkpoint:
    """A checkpoint read and checked: ``state_dict`` fits ``config``'s model exactly.

    ``format`` is ``openai`` (OpenAI's TorchScript archives and published names),
    ``state_dict`` (a bare file of OpenAI's parameter names: OpenAI's or open_clip's),
    ``huggingface`` or ``open_clip`` (hub folders); ``source`` is what the user named.
    """

    format: str
    source: str
    files: list[str]
    state_dict: dict[str, torch.Tensor]
    config: CLIPConfig
    preprocess: Preprocess
    scripted: torch.jit.ScriptModule | None = None
    known_sha256: str | None = field(default=None, repr=False)

    @property
    def checkpoint_id(self) -> str:
        """Content hash of the weight file(s): the key of every cache of derived data."""
        return content_id(self.files, self.known_sha256)


def _where(files: Sequence[str]) -> str:
    return files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more shards)"


def check_weights(state_dict: Mapping[str, torch.Tensor], config: CLIPConfig, files: Sequence[str]) -> None:
    """Raise one CheckpointError unless ``state_dict`` holds exactly the parameters of ``config``'s model."""
    where = _where(files)
    try:
        with torch.device("meta"):
            expected = CLIP(config).state_dict()
    except ValueError as err:
        raise CheckpointError(f"{where}: its hyperparameters do not form a CLIP model: {err}.") from None
    given = {k: v for k, v in state_dict.items() if k not in CHECKPOINT_META_KEYS}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k} {tuple(given[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong)):
        if names:
            shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{where} does not fit a CLIP model; parameters " + "; ".join(problems) + ".")


def check_declared(
    declared: Mapping[str, object], config: CLIPConfig, config_path: str, files: Sequence[str]
) -> None:
    """Raise one CheckpointError when a config file's sizes disagree with those of the weights.

    ``declared`` maps :class:`CLIPConfig` field names to what the config file says (a partial
    checkpoint can look like a smaller, consistent model; this catches it).
    """
    wrong = [
        f"{name} {value!r} (the weights: {getattr(config, name)!r})"
        for name, value in declared.items()
        if value is not None and value != getattr(config, name)
    ]
    if wrong:
        raise CheckpointError(f"{_where(files)} does not match {config_path}: " + "; ".join(wrong) + ".")


def check_vocabulary(config: CLIPConfig, config_path: str) -> None:
    """Refuse text towers built for another tokenizer than CLIP's BPE (their ids would be wrong)."""
    if config.vocab_size != VOCAB_SIZE:
        raise CheckpointError(
            f"{config_path}: a text vocabulary of {config.vocab_size} tokens; clip_lightning tokenizes "
            f"with CLIP's {VOCAB_SIZE}-token BPE, so only such text towers are supported."
        )
