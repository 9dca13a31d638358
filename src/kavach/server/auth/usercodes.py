"""User codes: short, unambiguous, typed by a person (RFC 8628 §6.1)."""

from __future__ import annotations

import re
import secrets

# Consonants only: no vowels (no accidental words), no 0/O or 1/I confusion.
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
LENGTH = 8
_VALID = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def new_user_code() -> str:
    """Return a random user code in its stored (unformatted) form."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_user_code(text: str) -> str | None:
    """Return the stored form of what a person typed, or None if it cannot be a code."""
    cleaned = re.sub(r"[\s-]", "", text).upper()
    return cleaned if _VALID.match(cleaned) else None


def format_user_code(code: str) -> str:
    """Return the code as shown to people: XXXX-XXXX."""
    return f"{code[:4]}-{code[4:]}"
