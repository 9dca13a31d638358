"""JSON secrets files: one flat object of names to string values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kavach.formats.common import FormatError, check_names

_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}


def kind_of(value: Any) -> str:
    """Return how messages name the type of a parsed value."""
    if value is None:
        return "null"
    return _TYPES.get(type(value), type(value).__name__)


def check_values(data: Mapping[str, Any], *, where: str, hint: str) -> dict[str, str]:
    """Return `data` if every value is a string; else fail naming the others and their types."""
    wrong = {name: kind_of(value) for name, value in data.items() if not isinstance(value, str)}
    if wrong:
        listed = ", ".join(f"{name} ({kind})" for name, kind in sorted(wrong.items()))
        raise FormatError(f"{where}: values must be strings, not: {listed}; {hint}")
    return dict(data)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise FormatError(f"JSON: {name!r} appears twice in one object")
        seen[name] = value
    return seen


def parse_json(text: str) -> dict[str, str]:
    """Return the secrets in a JSON object; numbers, booleans, null and nesting are refused."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the document's text may hold secret values.
        raise FormatError(f"JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        raise FormatError(f"JSON: expected one object of NAME: value pairs, not {kind_of(data)}")
    check_names(data, where="JSON")
    return check_values(data, where="JSON", hint='quote them, e.g. "PORT": "8080"')


def render_json(secrets: Mapping[str, str]) -> str:
    """Return `secrets` as an indented JSON object (UTF-8 kept as is)."""
    return json.dumps(dict(secrets), indent=2, ensure_ascii=False) + "\n"
