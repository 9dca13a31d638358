"""Rules for text from clients, each with the words that explain it (no web framework here).

A schema declares a pattern through `worded`, which remembers how to say it; a refusal then
says the rule in words (`wording.describe`), never the regular expression.
"""

from __future__ import annotations

from kavach.formats.common import NAME_RULE

_WORDS: dict[str, str] = {}


def worded(pattern: str, words: str) -> str:
    """Return `pattern` for a schema, remembering `words` as what its refusals say."""
    _WORDS[pattern] = words
    return pattern


def words_for(pattern: str) -> str | None:
    """Return the words a pattern was declared with, or None."""
    return _WORDS.get(pattern)


# Free text from clients: anything but NUL, which PostgreSQL cannot store in text and no
# name, message or description needs. (Secret values are sealed before storage and may.)
NUL_FREE = worded(r"^[^\x00]*$", "must not contain a NUL character")

# Organizations, secret groups, environments, user groups and service tokens.
RESOURCE_NAME = worded(
    r"^[a-z0-9][a-z0-9._-]{0,62}$",
    "names are 1–63 characters: a–z, 0–9, '.', '_' or '-', "  # noqa: RUF001
    "starting with a letter or digit",
)
SECRET_NAME = worded(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$", NAME_RULE)
VERSION_ID = worded(r"^[a-z0-9]{8}$", "version ids are 8 characters: a–z and 0–9")  # noqa: RUF001
VERSION_REF = worded(
    r"^([a-z0-9]{8}|v?[0-9]{1,9}|latest(~[0-9]{1,9})?)$",
    "a version is its id (8 characters: a–z and 0–9), its number (3 or v3), "  # noqa: RUF001
    "latest or latest~N",
)
# A change feed's revision, as the feed answered it (opaque to clients).
REVISION = worded(
    r"^[A-Za-z0-9._:~-]{1,128}$",
    "a revision is what the change feed answered: 1–128 characters, "  # noqa: RUF001
    "letters, digits, '.', '_', ':', '~' or '-'",
)
