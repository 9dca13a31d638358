"""Shell output: `export NAME='value'` lines that are safe to `eval` or source in sh and bash."""

from __future__ import annotations

from collections.abc import Mapping

from kavach.formats.common import SHELL_NAME, FormatError, names_list


def shell_quote(value: str) -> str:
    """Return `value` as one single-quoted shell word (`'` written as `'\\''`)."""
    return "'" + value.replace("'", "'\\''") + "'"


def render_shell(secrets: Mapping[str, str]) -> str:
    """Return `secrets` as export lines; refuse names a shell cannot hold and NUL characters."""
    bad_names = [name for name in secrets if SHELL_NAME.fullmatch(name) is None]
    with_nul = [name for name, value in secrets.items() if "\0" in value]
    if bad_names or with_nul:
        reasons = []
        if bad_names:
            reasons.append(f"{names_list(bad_names)} (not a shell variable name)")
        if with_nul:
            reasons.append(f"{names_list(with_nul)} (a NUL character)")
        raise FormatError(
            f"these secrets cannot be written as shell variables: {'; '.join(reasons)}; "
            "use --format json or yaml"
        )
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in secrets.items())
