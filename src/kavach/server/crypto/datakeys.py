"""Per-environment data keys: created on first use, wrapped by the KEK, cached unwrapped."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.crypto.envelope import DecryptionFailed, Keyring, new_data_key
from kavach.server.db.base import utcnow
from kavach.server.errors import CannotDecrypt
from kavach.server.logging import get_logger
from kavach.server.recent import Recent
from kavach.server.secrets.models import DataKey

_CACHE_SIZE = 4096
log = get_logger(__name__)


def _wrap_aad(environment_id: uuid.UUID, data_key_id: uuid.UUID) -> bytes:
    return f"kavach-data-key:{environment_id}:{data_key_id}".encode()


class SecretKeys:
    """The KEK keyring plus an LRU cache of unwrapped data keys (which never change)."""

    def __init__(self, keyring: Keyring, reload: Callable[[], Keyring] | None = None) -> None:
        self.keyring = keyring
        self._reload = reload
        self._cache: Recent[uuid.UUID, bytes] = Recent(_CACHE_SIZE)
        self._writing: dict[uuid.UUID, uuid.UUID] = {}  # environment id -> its data key's id

    def _remember(self, data_key_id: uuid.UUID, key: bytes) -> bytes:
        self._cache.put(data_key_id, key)
        return key

    def unwrap(self, record: DataKey) -> bytes:
        """Return a data key's plaintext, reloading the keyring once if its KEK is new to us."""
        cached = self._cache.get(record.id)
        if cached is not None:
            return cached
        aad = _wrap_aad(record.environment_id, record.id)
        if record.kek_id not in self.keyring.by_id and self._reload is not None:
            # Another process rotated the key since this one started.
            self.keyring = self._reload()
        try:
            key = self.keyring.unwrap(record.kek_id, record.wrapped_key, aad)
        except KeyError:
            log.error("data_key_unwrap_failed", data_key_id=str(record.id), kek_id=record.kek_id)
            raise CannotDecrypt(
                "a data key is wrapped by a key this server does not hold; check the keys"
            ) from None
        except DecryptionFailed:
            log.error("data_key_unwrap_failed", data_key_id=str(record.id), kek_id=record.kek_id)
            raise CannotDecrypt("a data key failed to decrypt; check the keys") from None
        return self._remember(record.id, key)

    async def for_writing(
        self, session: AsyncSession, *, environment_id: uuid.UUID
    ) -> tuple[uuid.UUID, bytes]:
        """Return the id and plaintext of the environment's data key, creating it on first use.

        An environment keeps its data key for life (rotation re-wraps it), so it is cached.
        """
        cached = self.cached_for_writing(environment_id)
        if cached is not None:
            return cached
        record = await session.scalar(
            select(DataKey)
            .where(DataKey.environment_id == environment_id)
            .order_by(DataKey.created_at.desc())
            .limit(1)
        )
        if record is None:
            # Not remembered for writing: this transaction may yet roll back.
            record = await self._create(session, environment_id)
            return record.id, self.unwrap(record)
        if len(self._writing) >= _CACHE_SIZE:
            self._writing.clear()
        self._writing[environment_id] = record.id
        return record.id, self.unwrap(record)

    def cached_for_writing(self, environment_id: uuid.UUID) -> tuple[uuid.UUID, bytes] | None:
        """Return the id and plaintext of the environment's data key if cached, else None."""
        known = self._writing.get(environment_id)
        key = self._cache.get(known) if known is not None else None
        return None if known is None or key is None else (known, key)

    async def _create(self, session: AsyncSession, environment_id: uuid.UUID) -> DataKey:
        if self._reload is not None:
            # Wrap under the key that is active now: it may have been rotated since start-up,
            # and a key left behind here could later be retired with this data key under it.
            self.keyring = self._reload()
        key = new_data_key()
        record = DataKey(id=uuid.uuid4(), environment_id=environment_id, kek_id="", wrapped_key=b"")
        record.kek_id, record.wrapped_key = self.keyring.wrap(
            key, _wrap_aad(environment_id, record.id)
        )
        session.add(record)
        await session.flush()
        self._remember(record.id, key)
        return record

    def cached(self, data_key_id: uuid.UUID) -> bytes | None:
        """Return the plaintext of the data key with this id if cached, else None."""
        return self._cache.get(data_key_id)

    async def by_ids(self, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, bytes]:
        """Return the plaintext data keys with the given ids."""
        missing = [i for i in ids if i not in self._cache]
        if missing:
            for record in await session.scalars(select(DataKey).where(DataKey.id.in_(missing))):
                self.unwrap(record)
        return {i: self._cache[i] for i in ids}

    async def rewrap_all(self, session: AsyncSession, *, batch: int = 500) -> int:
        """Re-wrap every data key not under the active KEK; values are not touched."""
        active = self.keyring.active_id
        count = 0
        while True:
            records = list(
                await session.scalars(select(DataKey).where(DataKey.kek_id != active).limit(batch))
            )
            if not records:
                return count
            for record in records:
                key = self.unwrap(record)
                record.kek_id, record.wrapped_key = self.keyring.wrap(
                    key, _wrap_aad(record.environment_id, record.id)
                )
                record.rewrapped_at = utcnow()
            await session.flush()
            count += len(records)
