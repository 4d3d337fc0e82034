from __future__ import annotations

import warnings

import pytest
import torch

import clip_lightning as clip
from clip_lightning.models import SimpleTokenizer, tokenize
from tests.helpers import random_texts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip as openai_clip


def test_ids_equal_original_on_10000_varied_strings() -> None:
    texts = random_texts(10_000)
    ours = tokenize(texts, truncate=True)
    ref = openai_clip.tokenize(texts, truncate=True)
    mismatches = [t for t, a, b in zip(texts, ours, ref, strict=False) if not torch.equal(a, b.to(a.dtype))]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]!r}"
    # The corpus really exercises truncation and every special input class.
    assert sum(int(row[-1] != 0) for row in ref) > 100


def test_shape_dtype_and_special_tokens() -> None:
    out = clip.tokenize(["a diagram", "a dog", "a cat"])
    assert out.shape == (3, 77) and out.dtype == torch.long
    assert (out[:, 0] == 49406).all()
    assert (out.argmax(dim=-1) == torch.tensor([3, 3, 3])).all()  # EOT is the largest id
    assert len(SimpleTokenizer()) == 49408


def test_overlong_text_is_refused_naming_it() -> None:
    long_text = "word " * 100
    with pytest.raises(RuntimeError, match="word word") as err:
        tokenize(long_text)
    assert "truncate=True" in str(err.value)
    with pytest.raises(RuntimeError):
        openai_clip.tokenize(long_text)


def test_truncate_ends_with_eot_and_matches_original() -> None:
    long_text = "a photo of " * 40
    ours = tokenize(long_text, truncate=True)
    assert ours[0, -1].item() == 49407
    assert torch.equal(ours, openai_clip.tokenize(long_text, truncate=True).to(ours.dtype))


def test_custom_context_length_and_decode() -> None:
    out = tokenize("a photo of a cat", context_length=16)
    assert out.shape == (1, 16)
    tok = SimpleTokenizer()
    assert tok.decode(tok.encode("A photo of a Cat!")).strip() == "a photo of a cat !"
