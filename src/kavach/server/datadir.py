"""The server's data directory: the SQLite database, generated keys and lock files."""

from __future__ import annotations

import stat
from pathlib import Path

from kavach.server.errors import ConfigurationError


def private_data_dir(path: Path) -> Path:
    """Return the data directory, created 0700 if missing; refuse one others can reach.

    An existing directory is never loosened or tightened behind its owner's back: one that
    group or others can enter would let them read the database or replace the keys file.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"the data directory {path} holds the database and generated keys, but group or "
            f"others have access to it (mode {mode:o}); restrict it with chmod 700 {path}"
        )
    return path
