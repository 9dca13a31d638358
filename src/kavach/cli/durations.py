"""Durations on the command line: `3600`, `45m`, `12h`, `30d`, `2w`."""

from __future__ import annotations

import re

import typer

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"(\d+)([smhdw]?)")


def parse_duration(value: str) -> int:
    """Return seconds for `3600`, `45m`, `12h`, `30d` or `2w`."""
    match = DURATION.fullmatch(value.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(
            f"{value!r} is not a duration: use seconds or a number with s, m, h, d or w "
            "(e.g. 3600, 12h, 30d)"
        )
    return int(match.group(1)) * UNITS[match.group(2) or "s"]
