"""Refused input in words: fields as clients name them, rules as declared, no jargon."""

# ruff: noqa: RUF001

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from kavach.server.text_rules import worded
from kavach.server.wording import describe, field_of, in_words

DIGITS = worded(r"^[0-9]{1,3}$", "codes are 1–3 digits")


class Sample(BaseModel):
    code: Annotated[str, Field(pattern=DIGITS)]
    other: Annotated[str, Field(pattern=r"^x$")] = "x"
    names: dict[Annotated[str, Field(pattern=DIGITS)], int] = Field(default_factory=dict)


def _errors(data: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(data)
    return [dict(error) for error in caught.value.errors()]


def test_a_pattern_is_said_with_its_words_and_an_undeclared_one_without_the_regex() -> None:
    errors = _errors({"code": "abcd", "other": "y", "names": {"k" * 100: "nope"}})
    assert in_words(errors) == (
        "code: codes are 1–3 digits; other: is not in the accepted form; "
        f"names.{'k' * 64}…: codes are 1–3 digits; names.{'k' * 64}…: must be a whole number"
    )


def test_locations_drop_where_the_value_came_from() -> None:
    assert field_of({"loc": ("body", "set", "API_KEY", "[key]")}) == "set.API_KEY"
    assert field_of({"loc": ("query", "version")}) == "version"
    assert field_of({"loc": ("body", 17), "type": "json_invalid"}) == "body"
    assert field_of({"loc": ("body",)}) == "body"
    assert describe({"type": "some_new_type", "msg": "Input should be odd"}) == (
        "is not accepted here"
    )
    many = [{"loc": ("body", f"f{i}"), "type": "missing"} for i in range(12)]
    assert in_words(many).endswith("f9: is required; and 2 more")
