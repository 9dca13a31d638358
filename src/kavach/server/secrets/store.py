"""Where secret versions live: the store contract, and its implementation on SQLAlchemy.

The use cases (secrets.usecases) reach versions only through a `SecretStore`. Two
implementations keep one contract, checked by one test suite on both databases
(tests/integration/test_secret_store.py):

- `SqlSecretStore`, on SQLAlchemy: SQLite, and any database SQLAlchemy drives;
- `PostgresSecretStore` (secrets.store_postgres): the same answers from PostgreSQL's driver
  directly, its statements compiled from SQLAlchemy, commits gathered into group commits.

The contract:
- `latest` returns the latest version, its sealed secrets, and the access epoch read in
  the same statement, so the gate can confirm a cached admission against it.
- `commit` writes one change on the latest version, with its audit event, atomically and
  under the environment's lock; it first asks the change whether the caller's access holds
  under the epoch read under that lock (`Recheck` if not), then whether the parent the
  change names is still the latest (`Stale` if not). A refusal the change raises is that
  change's alone and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.access import Actor
from kavach.server.audit import service as audit
from kavach.server.audit.service import NewEvent
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.errors import VersionConflict
from kavach.server.rbac.models import AccessEpoch
from kavach.server.secrets import flows, service
from kavach.server.secrets.models import Secret, SecretVersion
from kavach.server.secrets.service import Sealed, VersionFacts

# The access epoch, read with the data it guards.
EPOCH = select(AccessEpoch.value).where(AccessEpoch.id == 1).scalar_subquery()


def latest_statement() -> Select[Any]:
    """The epoch, and the latest version with its secrets (sorted), in one statement.

    One row per secret, or one without a version or secret: the epoch always comes back.
    """
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(EPOCH.label("epoch"), *service.VERSION_COLUMNS, Secret.name, Secret.value_encrypted)
        .select_from(one)
        .outerjoin(SecretVersion, SecretVersion.id == service.LATEST_ID.scalar_subquery())
        .outerjoin(Secret, Secret.version_id == SecretVersion.id)
        .order_by(Secret.name)
    )


LATEST = latest_statement()


@dataclass(frozen=True)
class Snapshot:
    """A version as stored (None: the environment has none), its sealed secrets, the epoch."""

    epoch: int | None
    version: VersionFacts | None
    sealed: list[Sealed]


def snapshot_of(rows: Sequence[Mapping[str, Any]]) -> Snapshot:
    """Build a snapshot from the rows of the latest statement (by column name)."""
    first = rows[0]
    if first["id"] is None:
        return Snapshot(first["epoch"], None, [])
    sealed = [(row["name"], row["value_encrypted"]) for row in rows if row["name"] is not None]
    return Snapshot(first["epoch"], service.version_of(first), sealed)


class Recheck:
    """The caller's access did not hold under the epoch read under the commit's lock."""


@dataclass(frozen=True)
class Stale:
    """The parent the change names is no longer the latest version."""

    latest: VersionFacts | None


RECHECK = Recheck()
Outcome = SecretVersion | Recheck | Stale


@dataclass(frozen=True)
class Change:
    """One commit asked of the store, and what only the use case decides about it."""

    environment_id: uuid.UUID
    organization_id: uuid.UUID  # whose audit chain the event goes on
    message: str
    author: Actor
    parent_version: str | None  # the version the change was made on, if it says
    # The new version's secrets (and links) from the latest version and its values; raises
    # a refusal.
    values: Callable[[VersionFacts | None, dict[str, str]], service.Drafted]
    event: Callable[[SecretVersion], NewEvent]  # the commit's audit event
    holds: Callable[[int | None], bool]  # whether access holds under the epoch read locked
    # The epoch a cached admission rests on, for a store that checks it with what it writes
    # (None: decided in the database during the request, so there is nothing to check).
    expected_epoch: int | None = None

    def stale(self, latest: VersionFacts | None) -> bool:
        """Tell whether the parent this change names is no longer the latest version."""
        parent = self.parent_version
        return parent is not None and (latest is None or latest.id != parent)


class SecretStore(Protocol):
    """Versions of an environment's secrets: the latest one, and a commit on it."""

    async def latest(self, environment_id: uuid.UUID) -> Snapshot:
        """Return the latest version, its sealed secrets and the epoch, in one read."""
        ...

    async def data_key(self, version: VersionFacts) -> bytes:
        """Return the data key a version's secrets are sealed with."""
        ...

    async def commit(self, change: Change) -> Outcome:
        """Write a change on the latest version with its event, or say why not."""
        ...

    async def conflict(
        self, environment_id: uuid.UUID, parent_id: str, latest: VersionFacts | None
    ) -> VersionConflict:
        """Describe what changed since the parent a stale change names (a 409)."""
        ...


class SqlSecretStore:
    """The store on SQLAlchemy sessions (SQLite; also runs on PostgreSQL)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        keys: SecretKeys,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self.keys = keys

    async def latest(self, environment_id: uuid.UUID) -> Snapshot:
        """Return the latest version, its sealed secrets and the epoch, in one statement."""
        async with self._read_sessions() as session:
            connection = await session.connection()
            result = await connection.execute(LATEST, {"environment_id": environment_id})
            return snapshot_of([row._mapping for row in result])

    async def data_key(self, version: VersionFacts) -> bytes:
        """Return a version's data key, from the cache or unwrapped from the database."""
        key_id = service.data_key_of(version)
        cached = self.keys.cached(key_id)
        if cached is not None:
            return cached
        async with self._read_sessions() as session:
            return await service.version_key(session, self.keys, version)

    async def commit(self, change: Change) -> Outcome:
        """Write the change in one transaction, under the environment's lock."""
        async with self._sessions() as session, session.begin():
            latest = await service.lock_latest(session, environment_id=change.environment_id)
            # Read under the lock (SQLite: the database's write lock), after the change it
            # guards could have been made.
            epoch = await session.scalar(select(EPOCH))
            if not change.holds(epoch):
                return RECHECK
            if change.stale(latest):
                return Stale(latest)
            current = (
                await service.read_values(session, self.keys, version=latest) if latest else {}
            )
            drafted = change.values(latest, current)
            new = service.NewVersion(
                values=drafted.values,
                links=drafted.links,
                message=change.message,
                author=change.author,
                parent=latest,
            )
            version = await service.write_version(
                session, self.keys, environment_id=change.environment_id, new=new
            )
            await audit.append(session, [change.event(version)])
        return version

    async def conflict(
        self, environment_id: uuid.UUID, parent_id: str, latest: VersionFacts | None
    ) -> VersionConflict:
        """Describe what changed since the parent a stale change names (a 409)."""
        async with self._read_sessions() as session:
            if latest is not None:  # what a lock read of it holds is not all it says
                latest = await service.get_version(
                    session, environment_id=environment_id, version_id=latest.id
                )
            return await flows.conflict(
                session, self.keys, env_id=environment_id, parent_id=parent_id, latest=latest
            )
