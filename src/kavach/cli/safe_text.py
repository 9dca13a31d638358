"""Text from a server or a file made safe to show on a terminal.

A terminal obeys control characters: ESC starts sequences that retitle the window, clear
the screen, move the cursor or rewrite what was printed; C1 characters (U+0080-U+009F)
do the same on some terminals; DEL, backspace and carriage return overwrite; Unicode
format characters (bidi overrides and isolates, zero-width characters, tag characters)
reorder or hide text. Each of them is shown as a Python-style escape (`\\x1b`, `\\u202e`)
instead. Newlines and tabs are kept: they move to a new line or column, nothing more.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Cc: C0, DEL and C1 controls; Cf: format characters (bidi, zero-width, tags);
# Cs: lone surrogates (no terminal can show them); Zl, Zp: line and paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
KEPT = frozenset("\n\t")


def is_unsafe(char: str) -> bool:
    """Tell whether a terminal could act on `char` instead of showing it."""
    return char not in KEPT and unicodedata.category(char) in UNSAFE_CATEGORIES


def escape(char: str) -> str:
    """Return `char` as a visible escape: \\xNN, \\uNNNN or \\UNNNNNNNN."""
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def neutralize(text: str) -> str:
    """Return `text` with every character a terminal could act on shown as an escape."""
    if text.isprintable():  # the common case: nothing to look at character by character
        return text
    return "".join(escape(char) if is_unsafe(char) else char for char in text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if not is_unsafe(char):
        return char
    point = ord(char)
    if point < 0x10000:
        return f"\\u{point:04x}"
    high, low = divmod(point - 0x10000, 0x400)  # JSON spells these as a surrogate pair
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


# json.dumps escapes C0 itself; DEL and every non-ASCII character are looked at here.
_JSON_CANDIDATE = re.compile("[^\x00-\x7e]")


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """Return `data` as (indented) JSON that a terminal shows as it is and a parser reads exactly.

    Every character a terminal could act on is written as a \\u escape, which JSON parsers
    turn back into the same character: the data is unchanged, only its spelling differs.
    """
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    return _JSON_CANDIDATE.sub(_json_escape, text)
