from __future__ import annotations

import pytest

from clip_lightning.errors import ConfigError
from clip_lightning.tasks.classifier import format_prompts


def test_prompts_are_class_major_and_keep_literal_braces() -> None:
    prompts = format_prompts(["cat", "dog"], ["a {}.", "{{{}}} art"])
    assert prompts == ["a cat.", "{cat} art", "a dog.", "{dog} art"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a photo", "has no '{}' placeholder"),
        ("a {style} photo of a {}", "uses {style}; the only placeholder is {}"),
        ("a photo of a {c}.", "uses {c}"),
        ("a photo of a { cat", "is not a valid format string"),
    ],
)
def test_a_bad_template_is_one_clear_error(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")) as info:
        format_prompts(["cat"], ["a {}.", template])
    assert repr(template) in str(info.value)


def test_a_template_may_name_the_class_more_than_once() -> None:
    from clip_lightning.tasks.classifier import format_prompts

    assert format_prompts(["cat", "dog"], ["a {} and another {}.", "{{literal}} {}"]) == [
        "a cat and another cat.", "{literal} cat", "a dog and another dog.", "{literal} dog"
    ]  # fmt: skip
