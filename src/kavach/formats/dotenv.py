"""Dotenv files: parse the common syntax, render a form python-dotenv and bash read alike.

Parsing follows python-dotenv (without `${VAR}` expansion: values are literal): blank lines
and `#` comments, an optional `export ` prefix, unquoted values (an inline comment needs a
space before `#`), single-quoted values (only `\\\\` and `\\'` are escapes) and double-quoted
values (`\\\\ \\' \\" \\a \\b \\f \\n \\r \\t \\v` are escapes); quoted values may span lines.
A name set twice is an error, not a silent override.

Rendering writes each value so that python-dotenv's `dotenv_values(path)` and bash's
`set -a; . ./FILE; set +a` both read it back exactly:

- single quotes when the value has no `'`, no `\\\\` and does not end in `\\` (bash takes
  everything between single quotes literally; python-dotenv only decodes `\\\\` and `\\'`);
- otherwise double quotes, escaping `\\` and `"`, when the value has no `$` and no backtick
  (the only characters bash still expands there, and python-dotenv has no escape for them).

Some values have no form both readers agree on, and `render` refuses them, naming them:

- a `$` or backtick together with a `'`, a `\\\\` or a trailing `\\`;
- a carriage return (python-dotenv opens files with universal newlines, so it reads CR and
  CRLF as LF) or a NUL character (no environment variable can hold one);
- a name that is not a shell variable name (a `.` or `-` in it).

python-dotenv also expands `${NAME}` inside any value unless called with
`interpolate=False`; it has no escape for that, so such values are written literally and
`expanding_names` lists them for a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kavach.formats.common import (
    NAME_RULE,
    SHELL_NAME,
    FormatError,
    Unrepresentable,
    is_secret_name,
)

_SPACE = r"[^\S\r\n]*"
_INDENT = re.compile(_SPACE)
_BLANK = re.compile(_SPACE + r"(?:#[^\r\n]*)?(?:\r\n|\n|\r|\Z)")
_EXPORT = re.compile(r"export[^\S\r\n]+")
_KEY = re.compile(r"([^=#\s]+)" + _SPACE)
_EQUALS = re.compile("=" + _SPACE)
_SINGLE = re.compile(r"'((?:\\.|[^'\\])*)'", re.DOTALL)
_DOUBLE = re.compile(r'"((?:\\.|[^"\\])*)"', re.DOTALL)
_UNQUOTED = re.compile(r"[^\r\n]*")
_INLINE_COMMENT = re.compile(r"\s+#.*")
_END = re.compile(_SPACE + r"(?:#[^\r\n]*)?(?:\r\n|\n|\r|\Z)")
_SINGLE_ESCAPE = re.compile(r"\\[\\']")
_DOUBLE_ESCAPE = re.compile(r"\\[\\'\"abfnrtv]")
_DECODED = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
# What python-dotenv's interpolation replaces (its own pattern).
_EXPANSION = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")


def _unescape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda match: _DECODED[match.group(0)[1]], text)


class _Reader:
    """A position in the text and the line it is on, for messages."""

    def __init__(self, text: str) -> None:
        self.text = text.removeprefix("\ufeff")
        self.pos = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def take(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
        return match

    def fail(self, message: str, line: int | None = None) -> FormatError:
        return FormatError(f"line {line or self.line}: {message}")


def _value(reader: _Reader, line: int) -> str:
    quote = reader.text[reader.pos : reader.pos + 1]
    if quote in ("'", '"'):
        match = reader.take(_SINGLE if quote == "'" else _DOUBLE)
        if match is None:
            raise reader.fail(f"the value's opening {quote} is never closed", line)
        escapes = _SINGLE_ESCAPE if quote == "'" else _DOUBLE_ESCAPE
        value = _unescape(escapes, match.group(1))
        if reader.take(_END) is None:
            raise reader.fail("unexpected text after the closing quote", line)
        return value
    match = reader.take(_UNQUOTED)
    raw = match.group(0) if match else ""
    return _INLINE_COMMENT.sub("", raw).rstrip()


def parse_dotenv(text: str) -> dict[str, str]:
    """Return the NAME=VALUE pairs of a dotenv document, in file order."""
    reader = _Reader(text)
    found: dict[str, str] = {}
    lines: dict[str, int] = {}
    while not reader.done():
        if reader.take(_BLANK) is not None:
            continue
        line = reader.line
        reader.take(_INDENT)
        reader.take(_EXPORT)
        key = reader.take(_KEY)
        equals = reader.take(_EQUALS) if key is not None else None
        if key is None or equals is None:
            raise reader.fail("expected NAME=VALUE", line)
        name = key.group(1)
        if not is_secret_name(name):
            raise reader.fail(f"invalid secret name: {NAME_RULE}", line)
        if name in found:
            raise reader.fail(f"{name} is already set on line {lines[name]}", line)
        # `KEY= # note` is an empty value, `KEY=#x` the value `#x` (python-dotenv's rule).
        if len(equals.group(0)) > 1 and reader.text.startswith("#", reader.pos):
            reader.take(_END)
            found[name] = ""
        else:
            found[name] = _value(reader, line)
        lines[name] = line
    return found


def _quote(value: str) -> str | None:
    """Return `value` quoted for both readers, or None when no quoting works for both."""
    if "'" not in value and "\\\\" not in value and not value.endswith("\\"):
        return f"'{value}'"
    if "$" not in value and "`" not in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return None


def _refusal(name: str, value: str) -> str | None:
    """Say why `name` cannot be written as dotenv, or None if it can."""
    if SHELL_NAME.fullmatch(name) is None:
        return "not a shell variable name"
    if "\0" in value:
        return "a NUL character"
    if "\r" in value:
        return "a carriage return"
    if _quote(value) is None:
        return "$ or ` together with ', \\\\ or a trailing \\"
    return None


def refusals(secrets: Mapping[str, str]) -> dict[str, str]:
    """Return the names dotenv cannot carry, each with the reason (never the value)."""
    found = {name: _refusal(name, value) for name, value in secrets.items()}
    return {name: reason for name, reason in found.items() if reason is not None}


def render_dotenv(secrets: Mapping[str, str]) -> str:
    """Return `secrets` as NAME='value' lines, or refuse (naming them) what cannot be."""
    refused = refusals(secrets)
    if refused:
        raise Unrepresentable("dotenv that python-dotenv and bash read alike", refused)
    return "".join(f"{name}={_quote(value)}\n" for name, value in secrets.items())


def expanding_names(secrets: Mapping[str, str]) -> list[str]:
    """Return the names whose values python-dotenv would expand (`${...}`) by default."""
    return sorted(name for name, value in secrets.items() if _EXPANSION.search(value))
