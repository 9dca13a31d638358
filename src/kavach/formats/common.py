"""What every secrets file format shares: the name rules and the one error type."""

from __future__ import annotations

import re
from collections.abc import Iterable

# The server's rule for secret names (the API contract).
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
# What a POSIX shell accepts as a variable name: dotenv and shell output need it.
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FormatError(ValueError):
    """A secrets file that cannot be read, or secrets a format cannot carry.

    Messages name lines and secret names, never values.
    """


def is_secret_name(name: str) -> bool:
    """Tell whether `name` is a valid secret name."""
    return SECRET_NAME.fullmatch(name) is not None


def names_list(names: Iterable[str]) -> str:
    """Return names as `A, B, C` for messages (sorted, each once)."""
    return ", ".join(sorted(set(names)))


def check_names(names: Iterable[str], *, where: str) -> None:
    """Refuse names the server would refuse; `where` says where they came from."""
    bad = [name for name in names if not is_secret_name(name)]
    if bad:
        raise FormatError(
            f"{where}: invalid secret name(s) {names_list(repr(n) for n in bad)}: a name starts "
            "with a letter or _, then letters, digits, _, . or - (at most 256 characters)"
        )
