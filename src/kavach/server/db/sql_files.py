"""The PostgreSQL functions migrations create, one file per version of each.

Version `n` of function `name` is the statement in sql/`name`.v`n`.sql, shipped in the
package. A migration loads the version it creates by number, never "the latest": what a
migration runs stays what it ran when it was released. See sql/README.md.
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_FILE = re.compile(r"(?P<name>[a-z_][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.sql")


def _directory() -> Traversable:
    return files("kavach.server.db").joinpath("sql")


def file_name(name: str, version: int) -> str:
    """Return the name of the file holding version `version` of function `name`."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a function name: {name!r}")
    if version < 1:
        raise ValueError(f"versions start at 1, not {version}")
    return f"{name}.v{version}.sql"


def load(name: str, version: int) -> str:
    """Return the statement that creates version `version` of function `name`."""
    path = _directory().joinpath(file_name(name, version))
    if not path.is_file():
        raise FileNotFoundError(f"no version {version} of {name}: {file_name(name, version)}")
    return path.read_text(encoding="utf-8")


def versions() -> dict[str, list[int]]:
    """Return every function with a file and its versions, in ascending order."""
    found: dict[str, list[int]] = {}
    for entry in _directory().iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is not None:
            found.setdefault(match["name"], []).append(int(match["version"]))
    return {name: sorted(numbers) for name, numbers in sorted(found.items())}
