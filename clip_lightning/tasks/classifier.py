"""Zero-shot classifier weights from class names x prompt templates, and the logits they give."""

from __future__ import annotations

import string
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from ..datasets.prompts import class_names_of
from ..errors import ConfigError
from ..models.tokenizer import tokenize
from ..ops import PackedWeights, on_rows

__all__ = [
    "CLASSIFIERS",
    "ClassifierCache",
    "build_zero_shot_classifier",
    "check_template",
    "encode_texts",
    "format_prompts",
    "zero_shot_logits",
]


def check_template(template: str) -> None:
    """Refuse a template that is not text with one or more ``{}`` placeholders for the class name.

    ``str.format`` would raise a bare ValueError or KeyError (``{style}``), or silently drop the
    class name; this says which template and what to write instead.
    """
    hint = "write the class name as {} (e.g. 'a photo of a {}.'), and literal braces as {{ and }}"
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as err:  # a lone brace
        raise ConfigError(f"template {template!r} is not a valid format string ({err}); {hint}") from None
    if not fields:
        raise ConfigError(f"template {template!r} has no '{{}}' placeholder for the class name; {hint}")
    others = sorted({f"{{{field}}}" for field in fields if field != ""})
    if others:
        raise ConfigError(
            f"template {template!r} uses {', '.join(others)}; the only placeholder is {{}} "
            f"(CLIP_benchmark's {{c}} too must be written {{}}); {hint}"
        )


def format_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, class-major: each template with every ``{}`` filled by each class name."""
    if not classnames:
        raise ConfigError("classnames is empty")
    if not templates:
        raise ConfigError("templates is empty")
    for template in templates:
        check_template(template)
    # Every {} takes the class name (CLIP_benchmark's templates may name it twice: {c} ... {c}).
    slots = [sum(f is not None for _, f, _, _ in string.Formatter().parse(t)) for t in templates]
    return [t.format(*[name] * n) for name in classnames for t, n in zip(templates, slots, strict=True)]


@torch.no_grad()
def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalized text features ``[len(texts), D]`` (fp32) in the order of ``texts``.

    Texts are batched by token length, so a batch of short prompts never runs the
    transformer over the padding of a long one.
    """
    tokens = tokenize(list(texts))
    device = next(model.parameters()).device
    lengths = tokens.argmax(dim=-1)
    order = torch.argsort(lengths, stable=True)
    features: torch.Tensor | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out = model.encode_text(tokens[idx].to(device)).float()
        out = out / out.norm(dim=-1, keepdim=True)
        if features is None:
            features = torch.empty(len(texts), out.shape[1], device=out.device)
        features[idx.to(out.device)] = out
    assert features is not None
    return features


@torch.no_grad()
def build_zero_shot_classifier(
    model: Any,
    classnames: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """Classifier weights ``[embed_dim, num_classes]`` (fp32, unit columns).

    For each class, every template's text embedding is L2-normalized, the embeddings are
    averaged, and the mean is normalized again (CLIP's prompt ensembling). A class with several
    names (a :class:`~clip_lightning.datasets.ClassName`, FER2013's) averages over all its
    names x templates.
    """
    groups = [class_names_of(name) for name in classnames]
    names = [name for group in groups for name in group]
    prompts = format_prompts(names, templates)
    features = encode_texts(model, prompts, batch_size=batch_size)
    if len(names) == len(groups):
        per_class = features.view(len(classnames), len(templates), -1).mean(dim=1)
    else:
        rows = features.view(len(names), len(templates), -1)
        ends = torch.tensor([len(group) for group in groups]).cumsum(0).tolist()
        per_class = torch.stack(
            [
                rows[end - len(group) : end].flatten(0, 1).mean(dim=0)
                for group, end in zip(groups, ends, strict=True)
            ]
        )
    per_class = per_class / per_class.norm(dim=-1, keepdim=True)
    return per_class.t().contiguous()


class ClassifierCache:
    """Classifier weights per (checkpoint, class names, templates, precision), process-wide.

    Validate and test of one run, and repeated runs in one process (a sweep, a test suite), then
    encode the prompts once. Holds at most ``size`` classifiers, on CPU.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[Hashable, torch.Tensor] = {}

    def get(self, key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached classifier of ``key``, built by ``build()`` on a miss."""
        if key not in self._entries:
            weights = build()
            if len(self._entries) >= self.size:
                self._entries.clear()
            with torch.inference_mode(False):  # a normal tensor, which can be packed (zero_shot_logits)
                self._entries[key] = weights.cpu().clone()
        return self._entries[key]


CLASSIFIERS = ClassifierCache()


def zero_shot_logits(
    features: torch.Tensor, classifier: torch.Tensor, scale: torch.Tensor, packed: PackedWeights
) -> torch.Tensor:
    """Scaled cosine similarity of image embeddings ``[N, D]`` with classifier columns ``[D, C]``.

    A plain matmul against few classes rounds a row differently by its batch's size and its place
    in it (DDP batches differ from one process's); the packed product on padded rows does not (and
    falls back to the matmul off x86 CPUs). ``packed`` holds the classifier's packed copy.
    """
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True)
    scale = scale.float()
    return on_rows(lambda rows: packed.linear("classifier", scale * rows, classifier.t(), None), features)
