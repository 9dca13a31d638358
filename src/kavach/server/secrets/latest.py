"""The latest version of recently committed environments, as this server last knew them.

A lean commit is made on what is here and written only if the database still agrees (see
secrets.fast_commit), so an entry made stale by another server costs a retry, never a
wrong version. Only what the database holds is kept: ids and sealed values, no plaintext.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kavach.server.secrets.models import SecretVersion

Sealed = tuple[str, uuid.UUID, bytes]  # a secret's name, data key id and ciphertext


@dataclass(frozen=True)
class KnownVersion:
    """An environment's latest version (None: it has none) and its sealed secrets."""

    version: SecretVersion | None  # its id, seq and environment only
    sealed: list[Sealed]


class KnownVersions:
    """The latest version of the environments committed to most recently, at most `size`."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._known: dict[uuid.UUID, KnownVersion] = {}

    def get(self, environment_id: uuid.UUID) -> KnownVersion | None:
        """Return what is known of the environment's latest version, if anything."""
        return self._known.get(environment_id)

    def put(self, environment_id: uuid.UUID, known: KnownVersion) -> None:
        """Remember the environment's latest version; forget the oldest entry beyond `size`."""
        self._known.pop(environment_id, None)
        self._known[environment_id] = known
        if len(self._known) > self._size:
            del self._known[next(iter(self._known))]
