"""Shell output: `export NAME='value'` lines that are safe to `eval` or source in sh and bash."""

from __future__ import annotations

from collections.abc import Mapping

from kavach.formats.common import SHELL_NAME, Unrepresentable


def shell_quote(value: str) -> str:
    """Return `value` as one single-quoted shell word (`'` written as `'\\''`)."""
    return "'" + value.replace("'", "'\\''") + "'"


def refusals(secrets: Mapping[str, str]) -> dict[str, str]:
    """Return the names a shell cannot hold, each with the reason (never the value)."""
    refused = {}
    for name, value in secrets.items():
        if SHELL_NAME.fullmatch(name) is None:
            refused[name] = "not a shell variable name"
        elif "\0" in value:
            refused[name] = "a NUL character"
    return refused


def render_shell(secrets: Mapping[str, str]) -> str:
    """Return `secrets` as export lines; refuse names a shell cannot hold and NUL characters."""
    refused = refusals(secrets)
    if refused:
        raise Unrepresentable("shell variables", refused)
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in secrets.items())
