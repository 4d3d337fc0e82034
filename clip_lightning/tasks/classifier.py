"""Zero-shot classifier weights from class names x prompt templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..models.tokenizer import tokenize

__all__ = ["build_zero_shot_classifier", "format_prompts"]


def format_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, class-major: ``[t.format(c) for c in classnames for t in templates]``."""
    if not classnames:
        raise ValueError("classnames is empty")
    if not templates:
        raise ValueError("templates is empty")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' placeholder for the class name")
    return [template.format(name) for name in classnames for template in templates]


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
    averaged, and the mean is normalized again (CLIP's prompt ensembling).
    """
    prompts = format_prompts(classnames, templates)
    features = encode_texts(model, prompts, batch_size=batch_size)
    per_class = features.view(len(classnames), len(templates), -1).mean(dim=1)
    per_class = per_class / per_class.norm(dim=-1, keepdim=True)
    return per_class.t().contiguous()
