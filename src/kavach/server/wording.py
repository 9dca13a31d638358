"""Refused input in words: each pydantic error becomes one sentence a person can act on.

Never the submitted value (it may be a secret), never a regular expression, never
pydantic's own phrasing: a pattern is explained by the words it was declared with
(`text_rules.worded`), every other kind of error by the table below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kavach.server.text_rules import words_for

# Where FastAPI says a value came from; the field's own name is what a client knows.
_PLACES = frozenset({"body", "query", "path", "header", "cookie"})
_LONGEST_PART = 64


def _ctx(error: Mapping[str, Any], key: str) -> Any:
    return (error.get("ctx") or {}).get(key)


def _too_short(error: Mapping[str, Any]) -> str:
    least = _ctx(error, "min_length")
    return "must not be empty" if least == 1 else f"must be at least {least} characters"


def _pattern(error: Mapping[str, Any]) -> str:
    return words_for(str(_ctx(error, "pattern"))) or "is not in the accepted form"


def _raised(error: Mapping[str, Any]) -> str:
    # A validator's own sentence (ValueError("…")), without pydantic's "Value error, ".
    return str(_ctx(error, "error") or "is not accepted")


def _json(error: Mapping[str, Any]) -> str:
    # The parser's reason ("depth limit exceeded", "str is not valid UTF-8"), never input.
    reason = _ctx(error, "error")
    return f"not valid JSON: {reason}" if reason else "not valid JSON"


_NUMBER = "must be a whole number"
_OBJECT = "must be a JSON object"
_LIST = "must be a list"
_UUID = "must be a UUID"
_TEXT = "must be a string"
_TIME = "must be a date and time (ISO 8601)"
_SAYINGS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a field of this request",
    "string_type": lambda _: _TEXT,
    "string_unicode": lambda _: "must be valid Unicode text",
    "string_too_short": _too_short,
    "string_too_long": lambda e: f"must be at most {_ctx(e, 'max_length')} characters",
    "string_pattern_mismatch": _pattern,
    "int_type": lambda _: _NUMBER,
    "int_parsing": lambda _: _NUMBER,
    "int_from_float": lambda _: _NUMBER,
    "int_parsing_size": lambda _: "is too large a number",
    "float_type": lambda _: "must be a number",
    "float_parsing": lambda _: "must be a number",
    "finite_number": lambda _: "must be a finite number",
    "greater_than": lambda e: f"must be more than {_ctx(e, 'gt')}",
    "greater_than_equal": lambda e: f"must be at least {_ctx(e, 'ge')}",
    "less_than": lambda e: f"must be less than {_ctx(e, 'lt')}",
    "less_than_equal": lambda e: f"must be at most {_ctx(e, 'le')}",
    "bool_type": lambda _: "must be true or false",
    "bool_parsing": lambda _: "must be true or false",
    "dict_type": lambda _: _OBJECT,
    "model_type": lambda _: _OBJECT,
    "model_attributes_type": lambda _: _OBJECT,
    "list_type": lambda _: _LIST,
    "tuple_type": lambda _: _LIST,
    "set_type": lambda _: _LIST,
    "too_short": lambda e: f"must hold at least {_ctx(e, 'min_length')} items",
    "too_long": lambda e: f"must hold at most {_ctx(e, 'max_length')} items",
    "literal_error": lambda e: f"must be one of {_ctx(e, 'expected')}",
    "enum": lambda e: f"must be one of {_ctx(e, 'expected')}",
    "uuid_type": lambda _: _UUID,
    "uuid_parsing": lambda _: _UUID,
    "uuid_version": lambda _: _UUID,
    "datetime_type": lambda _: _TIME,
    "datetime_parsing": lambda _: _TIME,
    "datetime_from_date_parsing": lambda _: _TIME,
    "url_type": lambda _: "must be a URL",
    "url_parsing": lambda _: "must be a URL",
    "url_scheme": lambda _: "must be an http or https URL",
    "none_required": lambda _: "must be null",
    "value_error": _raised,
    "assertion_error": _raised,
    "json_invalid": _json,
    "json_type": lambda _: "must be JSON text",
}


def describe(error: Mapping[str, Any]) -> str:
    """Return what is wrong with one input, in words."""
    saying = _SAYINGS.get(str(error.get("type")))
    return saying(error) if saying is not None else "is not accepted here"


def field_of(error: Mapping[str, Any]) -> str:
    """Return the field an error is about as a client names it (`name`, `set.API_KEY`)."""
    parts = [str(part) for part in error.get("loc", ()) if part != "[key]"]
    if parts and parts[0] in _PLACES:
        place, parts = parts[0], parts[1:]
        if error.get("type") == "json_invalid" or not parts:
            return place  # the whole body; a parse error's position means nothing here
    shown = [part if len(part) <= _LONGEST_PART else part[:_LONGEST_PART] + "…" for part in parts]
    return ".".join(shown)


def in_words(errors: Sequence[Mapping[str, Any]], *, most: int = 10) -> str:
    """Return `field: what is wrong` for up to `most` errors, joined by `; `."""
    said = []
    for error in errors[:most]:
        field = field_of(error)
        said.append(f"{field}: {describe(error)}" if field else describe(error))
    more = len(errors) - most
    return "; ".join(said) + (f"; and {more} more" if more > 0 else "")
