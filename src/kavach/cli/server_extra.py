"""Whether the server (`kavach[server]`) is installed, for the commands that run it here.

`pip install kavach` installs the command line only; `kavach server …` and
`kavach audit verify --local` run server code in this process and need the `server` extra.
"""

from __future__ import annotations

import re
from importlib import metadata

from kavach.cli.errors import CliError

DISTRIBUTION = "kavach"
INSTALL_HINT = "pip install 'kavach[server]'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SERVER_MARKER = re.compile(r"""\bextra\s*==\s*["']server["']""")


def missing_server_distributions() -> list[str]:
    """Return the `server` extra's distributions that are not installed."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []  # a source tree on sys.path, not an install: nothing to compare with
    missing = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        name = _NAME.match(spec.strip())
        if name is None or not _SERVER_MARKER.search(marker):
            continue
        try:
            metadata.distribution(name.group())
        except metadata.PackageNotFoundError:
            missing.append(name.group())
    return missing


def require_server(command: str) -> None:
    """Fail with the install hint, exit code LOCAL, when the server is not installed."""
    if missing_server_distributions():
        raise CliError(f"`{command}` needs the Kavach server, not installed here: {INSTALL_HINT}")
