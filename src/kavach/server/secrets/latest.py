"""The latest version of an environment, as this server last knew it.

A lean commit is made on what is here and written only if the database still agrees (see
secrets.fast_commit), so an entry made stale by another server costs a retry, never a
wrong version. Only what the database holds is kept: ids and sealed values, no plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass

from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.service import Sealed


@dataclass(frozen=True)
class KnownVersion:
    """An environment's latest version (None: it has none) and its sealed secrets."""

    version: SecretVersion | None  # its id, seq, environment and data key only
    sealed: list[Sealed]
