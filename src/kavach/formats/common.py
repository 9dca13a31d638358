"""What every secrets file format shares: the name rules and the error types."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# The server's rule for secret names (the API contract).
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
# What a POSIX shell accepts as a variable name: dotenv and shell output need it.
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The same rule in words, for every message about a secret name (CLI and server alike).
NAME_RULE = (
    "secret names are 1–256 characters: letters, digits, '_', '.' or '-', "  # noqa: RUF001
    "starting with a letter or '_'"
)


class FormatError(ValueError):
    """A secrets file that cannot be read, or secrets a format cannot carry.

    Messages name lines and secret names, never values.
    """


class Unrepresentable(FormatError):
    """Secrets a format cannot carry; `refused` maps each name to the reason (never a value)."""

    def __init__(self, what: str, refused: Mapping[str, str]) -> None:
        self.refused = dict(sorted(refused.items()))
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.refused.items():
            by_reason.setdefault(reason, []).append(name)
        # Names and reasons only, grouped by reason: `A, B (a carriage return); c.d (…)`.
        self.details = "; ".join(f"{names_list(names)} ({why})" for why, names in by_reason.items())
        super().__init__(f"these secrets cannot be written as {what}: {self.details}")


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
            f"{where}: invalid secret name(s) {names_list(repr(n) for n in bad)}: {NAME_RULE}"
        )
