"""The secret store on PostgreSQL's driver: one statement per read, group commits per environment.

Through SQLAlchemy's ORM and engine a commit runs about a dozen statements, each costing
more Python than its database work. Here the statements are written in SQLAlchemy,
compiled once for asyncpg (db.driver), and run on the driver directly.

Commits to one environment run one at a time under its lock, so those that arrive while
one is written wait together and go in the next transaction (batching.KeyedBatches): one
statement takes the environment's and the audit chain's locks and reads the latest
secrets, the chain's head and the access epoch (migration 0008); then one statement per
commit writes its version, secrets and audit event, each made on the one before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import LargeBinary, Text, bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.audit import service as audit
from kavach.server.audit.chain import COLUMNS as EVENT_COLUMNS
from kavach.server.audit.chain import AuditKey
from kavach.server.audit.models import AuditEvent
from kavach.server.batching import KeyedBatches
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.db.driver import DriverPool, DriverStatement
from kavach.server.errors import KavachError, ServiceUnavailable
from kavach.server.secrets import service
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.service import Sealed
from kavach.server.secrets.store import (
    LATEST,
    RECHECK,
    Change,
    Outcome,
    Snapshot,
    SqlSecretStore,
    Stale,
    snapshot_of,
)

# Commits one transaction may write together: it holds the organization's audit chain.
COMMIT_BATCH = 16
_ATTEMPTS = 8
_VERSION_KEY = "pk_secret_versions"
_LATEST = DriverStatement.compile(LATEST)
# The environment's lock and its latest secrets, the audit chain's lock and head, and the
# access epoch, all read after the locks are granted (migration 0008).
_LOCK_FOR_COMMIT = DriverStatement.compile(
    text("SELECT * FROM kavach_lock_for_commit(:environment_id, :chain)")
)


def _write_version() -> DriverStatement:
    """The new version, its secrets (given as arrays) and its audit event, in one statement.

    A version id that is taken fails the statement (pk_secret_versions): the batch is then
    written again under new ids.
    """
    version = insert(SecretVersion).values(service.VERSION_VALUES)
    written = version.returning(SecretVersion.id).cte("new_version")
    given = (
        func.unnest(
            bindparam("names", type_=ARRAY(Text)),
            bindparam("ciphertexts", type_=ARRAY(LargeBinary)),
        )
        .table_valued("name", "value_encrypted")
        .render_derived()
    )
    secrets = insert(service.SECRETS_TABLE).from_select(
        ["version_id", "name", "value_encrypted"],
        select(written.c.id, given.c.name, given.c.value_encrypted),
    )
    table = AuditEvent.__table__.c
    event_values = [bindparam(f"event_{name}", type_=table[name].type) for name in EVENT_COLUMNS]
    event = insert(AuditEvent).from_select(
        EVENT_COLUMNS, select(*event_values).select_from(written)
    )
    statement = select(written.c.id).add_cte(secrets.cte("new_secrets"))
    return DriverStatement.compile(statement.add_cte(event.cte("new_event")))


_WRITE_VERSION = _write_version()


class _IdTaken(Exception):
    """A drawn version id was taken (about never): the batch is written again."""


@dataclass(frozen=True)
class _Pending:
    """A commit waiting for its batch, with the data key its version is sealed with."""

    change: Change
    data_key: tuple[uuid.UUID, bytes]


@dataclass
class _Locked:
    """What a batch is made on (read under its locks), advanced by each commit."""

    epoch: int | None
    latest: SecretVersion | None  # only its id, seq, environment and data key are read
    current: dict[str, str]
    sealed: list[Sealed]  # the latest version's secrets as stored
    chain: str
    head: tuple[int, str]


class PostgresSecretStore(SqlSecretStore):
    """The store's contract on asyncpg directly; commits to one environment go in batches."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        keys: SecretKeys,
        *,
        pool: DriverPool,
        audit_key: AuditKey,
        chain_heads: dict[str, tuple[int, str]],
        batches: KeyedBatches[_Pending, Outcome],
    ) -> None:
        super().__init__(sessions, read_sessions, keys)
        self._pool = pool
        self._audit_key = audit_key
        self._chain_heads = chain_heads  # shared with the audit batcher's appends
        self._batches = batches

    async def latest(self, environment_id: uuid.UUID) -> Snapshot:
        """Return the latest version, its sealed secrets and the epoch, in one statement."""
        async with self._pool.connection() as driver:
            rows = await driver.fetch(*_LATEST.bound({"environment_id": environment_id}))
        return snapshot_of(rows)

    async def commit(self, change: Change) -> Outcome:
        """Queue the change for its environment's next batch and return its outcome."""
        data_key = self.keys.cached_for_writing(change.environment_id)
        if data_key is None:
            # This server's first commit there: the data key is found, or made, under the
            # environment's lock, after the change's access holds (one key per environment).
            return await super().commit(change)
        pending = _Pending(change, data_key)
        return await self._batches.submit(change.environment_id, pending, self._write_batch)

    async def _write_batch(self, batch: list[_Pending]) -> list[Outcome | Exception]:
        """Write a batch of commits to one environment, in order, in one transaction."""
        for _ in range(_ATTEMPTS):
            try:
                return await self._try_batch(batch)
            except _IdTaken:
                continue  # nothing was written: draw every id again
            except ServiceUnavailable as error:  # nothing was written: each request hears it
                return [ServiceUnavailable(error.message) for _ in batch]
        return [ServiceUnavailable("no free version id was drawn; retry") for _ in batch]

    async def _try_batch(self, batch: list[_Pending]) -> list[Outcome | Exception]:
        """Take the commit's locks, read what is stored, and write the batch on it."""
        environment_id = batch[0].change.environment_id
        chain = audit.chain_of(batch[0].change.organization_id)
        async with self._pool.connection() as driver:
            try:
                async with driver.transaction():
                    locked = await self._lock(driver, environment_id, chain)
                    outcomes, rows = self._prepared(locked, batch)
                    if rows:
                        args = [_WRITE_VERSION.args(row) for row in rows]
                        await driver.executemany(_WRITE_VERSION.sql, args)
            except asyncpg.UniqueViolationError as error:
                if error.constraint_name == _VERSION_KEY:
                    raise _IdTaken from None
                raise
        self._chain_heads[chain] = locked.head
        return outcomes

    async def _lock(
        self, driver: asyncpg.Connection, environment_id: uuid.UUID, chain: str
    ) -> _Locked:
        """Take the commit's locks and read the latest secrets, the chain's head and the epoch."""
        found = await driver.fetch(
            *_LOCK_FOR_COMMIT.bound({"environment_id": environment_id, "chain": chain})
        )
        first = found[0]
        head = audit.chain_head(
            None if first["head_seq"] is None else (first["head_seq"], first["head_hash"])
        )
        if first["version_id"] is None:
            return _Locked(first["epoch"], None, {}, [], chain, head)
        latest = SecretVersion(
            id=first["version_id"],
            seq=first["version_seq"],
            environment_id=environment_id,
            data_key_id=first["data_key_id"],
        )
        sealed = [(row["name"], row["value_encrypted"]) for row in found if row["name"]]
        current = service.decrypt_rows(await self.data_key(latest), latest, sealed)
        return _Locked(first["epoch"], latest, current, sealed, chain, head)

    def _prepared(
        self, locked: _Locked, batch: list[_Pending]
    ) -> tuple[list[Outcome | Exception], list[dict[str, Any]]]:
        """Make each commit of the batch on the one before; return the outcomes and rows."""
        outcomes: list[Outcome | Exception] = []
        rows = []
        for pending in batch:
            outcome, row = self._prepare(locked, pending)
            outcomes.append(outcome)
            if row is not None:
                rows.append(row)
        return outcomes, rows

    def _prepare(
        self, locked: _Locked, pending: _Pending
    ) -> tuple[Outcome | Exception, dict[str, Any] | None]:
        """Make one commit on the ones before it; a refusal or a recheck is its alone."""
        change = pending.change
        if not change.holds(locked.epoch):
            return RECHECK, None
        if change.stale(locked.latest):
            return Stale(locked.latest), None
        try:
            values = change.values(locked.latest, locked.current)
        except KavachError as refusal:
            return refusal, None
        new = service.NewVersion(
            values=values, message=change.message, author=change.author, parent=locked.latest
        )
        version = service.draft_version(change.environment_id, new, pending.data_key[0])
        return version, self._written(locked, pending.data_key, version, values, change)

    def _written(
        self,
        locked: _Locked,
        data_key: tuple[uuid.UUID, bytes],
        version: SecretVersion,
        values: dict[str, str],
        change: Change,
    ) -> dict[str, Any]:
        """Return what the write statement takes; the latest version and head move on to it."""
        _, key = data_key
        ciphertexts = service.sealed_values(version.environment_id, version.id, key, values)
        heads = {locked.chain: locked.head}
        (event_row,) = audit.driver_rows(self._audit_key, [change.event(version)], heads)
        names = list(values)
        locked.latest, locked.current, locked.head = version, values, heads[locked.chain]
        locked.sealed = list(zip(names, ciphertexts, strict=True))
        return {
            **service.row_of(version),
            **{f"event_{name}": value for name, value in event_row.items()},
            "names": names,
            "ciphertexts": ciphertexts,
        }
