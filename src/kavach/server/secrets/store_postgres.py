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
from sqlalchemy import (
    BigInteger,
    LargeBinary,
    Select,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.audit import service as audit
from kavach.server.audit.chain import COLUMNS as EVENT_COLUMNS
from kavach.server.audit.chain import AuditKey
from kavach.server.audit.models import AuditEvent
from kavach.server.batching import KeyedBatches
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.db.driver import DriverPool, DriverStatement
from kavach.server.errors import KavachError, ServiceUnavailable
from kavach.server.recent import Recent
from kavach.server.secrets import service
from kavach.server.secrets.models import Secret, SecretVersion
from kavach.server.secrets.service import Sealed, VersionFacts
from kavach.server.secrets.store import (
    EPOCH,
    RECHECK,
    Change,
    Outcome,
    Recheck,
    Snapshot,
    SqlSecretStore,
    Stale,
)

# Commits one transaction may write together: it holds the organization's audit chain.
COMMIT_BATCH = 16
# Environments whose latest version a server remembers, to make commits on it.
KNOWN_VERSIONS = 1024
_ATTEMPTS = 8
_VERSION_KEY = "pk_secret_versions"


def _latest_in_one_row() -> Select[Any]:
    """The epoch, and the latest version with its secrets as two arrays sorted by name.

    One row whatever the number of secrets: the version's columns come once, not once per
    secret, which is most of what the driver would otherwise decode.
    """
    by_name = Secret.name

    def sorted_array(column: Any) -> Any:
        return func.array_agg(aggregate_order_by(column, by_name))

    sealed = (
        select(
            sorted_array(Secret.name).label("names"),
            sorted_array(Secret.value_encrypted).label("ciphertexts"),
        )
        .where(Secret.version_id == SecretVersion.id)
        .lateral("sealed")
    )
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(EPOCH.label("epoch"), *service.VERSION_COLUMNS, sealed.c.names, sealed.c.ciphertexts)
        .select_from(one)
        .outerjoin(SecretVersion, SecretVersion.id == service.LATEST_ID.scalar_subquery())
        .outerjoin(sealed, true())
    )


_LATEST = DriverStatement.compile(_latest_in_one_row())
# The environment's lock and its latest secrets, the audit chain's lock and head, and the
# access epoch, all read after the locks are granted (migration 0008).
_LOCK_FOR_COMMIT = DriverStatement.compile(
    text("SELECT * FROM kavach_lock_for_commit(:environment_id, :chain)")
)


# The commit's locks, and a check that the environment's latest version, the chain's head
# (unless expected_seq is None) and the access epoch are the expected ones; it fails the
# transaction with audit.service.NOT_AT_HEAD if not (migration 0009).
_CHECK = func.kavach_check_at_head(
    bindparam("environment_id", type_=Uuid),
    bindparam("expected_version", type_=Text),
    bindparam("chain", type_=Text),
    bindparam("expected_seq", type_=BigInteger),
    bindparam("expected_hash", type_=Text),
    bindparam("expected_epoch", type_=BigInteger),
)
_CHECK_AT_HEAD = DriverStatement.compile(select(_CHECK))


def _write_version(*, checked: bool) -> DriverStatement:
    """The new version, its secrets (given as arrays) and its audit event, in one statement.

    Checked: only once kavach_check_at_head passes. A version id that is taken fails the
    statement (pk_secret_versions): the batch is then written again under new ids.
    """
    if checked:
        table = SecretVersion.__table__.c
        values = [bindparam(key, type_=table[key].type) for key in service.VERSION_KEYS]
        guard = select(_CHECK.label("passed")).cte("guard")
        version = insert(SecretVersion).from_select(
            service.VERSION_KEYS, select(*values).select_from(guard)
        )
    else:
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


_WRITE_VERSION = _write_version(checked=False)  # under the locks of _LOCK_FOR_COMMIT
_WRITE_AT_HEAD = _write_version(checked=True)  # outside a transaction: a pipeline is one


class _IdTaken(Exception):
    """A drawn version id was taken (about never): the batch is written again."""


@dataclass(frozen=True)
class _Pending:
    """A commit waiting for its batch, with the data key its version is sealed with."""

    change: Change
    data_key: tuple[uuid.UUID, bytes]


@dataclass(frozen=True)
class _Known:
    """An environment's latest version as this server last wrote or locked it (None: none)."""

    version: VersionFacts | None  # its id, seq, environment and data key only
    sealed: list[Sealed]  # no plaintext is kept


@dataclass
class _Locked:
    """What a batch is made on (read under its locks), advanced by each commit."""

    epoch: int | None
    latest: VersionFacts | None  # only its id, seq, environment and data key are read
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
        # Per environment, what the last batch left stored: the next is made on it.
        self._known: Recent[uuid.UUID, _Known] = Recent(KNOWN_VERSIONS)

    async def latest(self, environment_id: uuid.UUID) -> Snapshot:
        """Return the latest version, its sealed secrets and the epoch, in one statement."""
        async with self._pool.connection() as driver:
            row = await driver.fetchrow(*_LATEST.bound({"environment_id": environment_id}))
        if row["id"] is None:
            return Snapshot(row["epoch"], None, [])
        sealed = list(zip(row["names"] or (), row["ciphertexts"] or (), strict=True))
        return Snapshot(row["epoch"], service.version_of(row), sealed)

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
        """Write the batch on what this server knows, or else under the commit's locks."""
        async with self._pool.connection() as driver:
            try:
                outcomes = await self._at_head(driver, batch)
                if outcomes is None:
                    outcomes = await self._under_locks(driver, batch)
            except asyncpg.UniqueViolationError as error:
                if error.constraint_name == _VERSION_KEY:
                    raise _IdTaken from None
                raise
        return outcomes

    async def _at_head(
        self, driver: asyncpg.Connection, batch: list[_Pending]
    ) -> list[Outcome | Exception] | None:
        """Make the batch on the latest version and chain head this server knows; one round trip.

        Its statements go outside a transaction, in one pipeline, which the database runs as
        one transaction: each checks, under the commit's locks, that the latest version, the
        chain's head and the access epoch are the ones it was made on (kavach_check_at_head).
        The epoch expected is the one the gate admitted every change of the batch under
        (Change.expected_epoch); a batch with a change the gate decided in the database goes
        under the locks. If anything moved, nothing is written and None says so. A batch
        that writes nothing is checked alone, so its refusals hold.
        """
        first = batch[0].change
        epochs = {pending.change.expected_epoch for pending in batch}
        chain = audit.chain_of(first.organization_id)
        known = self._known.get(first.environment_id)
        head = self._chain_heads.get(chain)
        if known is None or head is None or len(epochs) != 1 or None in epochs:
            return None
        current: dict[str, str] = {}
        if known.version is not None and known.sealed:
            key = self.keys.cached(service.data_key_of(known.version))
            if key is None:
                return None
            current = service.decrypt_rows(key, known.version, known.sealed)
        (epoch,) = epochs
        locked = _Locked(epoch, known.version, current, known.sealed, chain, head)
        expected = _expected(locked, first.environment_id)
        outcomes, rows = self._prepared(locked, batch)
        try:
            if rows:
                await driver.executemany(
                    _WRITE_AT_HEAD.sql, [_WRITE_AT_HEAD.args(row) for row in rows]
                )
            elif any(not isinstance(outcome, Recheck) for outcome in outcomes):
                # Refusals write no event: the version and the epoch are what they rest on.
                await driver.fetchval(*_CHECK_AT_HEAD.bound({**expected, "expected_seq": None}))
        except asyncpg.PostgresError as error:
            if error.sqlstate == audit.NOT_AT_HEAD:
                return None
            raise
        self._remember(first.environment_id, locked, head_checked=bool(rows))
        return outcomes

    async def _under_locks(
        self, driver: asyncpg.Connection, batch: list[_Pending]
    ) -> list[Outcome | Exception]:
        """Take the commit's locks, read what is stored, and write the batch on it."""
        first = batch[0].change
        chain = audit.chain_of(first.organization_id)
        async with driver.transaction():
            locked = await self._lock(driver, first.environment_id, chain)
            outcomes, rows = self._prepared(locked, batch)
            if rows:
                args = [_WRITE_VERSION.args(row) for row in rows]
                await driver.executemany(_WRITE_VERSION.sql, args)
        self._remember(first.environment_id, locked, head_checked=True)
        return outcomes

    def _remember(self, environment_id: uuid.UUID, locked: _Locked, *, head_checked: bool) -> None:
        """Keep what the batch left stored, for the next batch to be made on."""
        self._known.put(environment_id, _Known(locked.latest, locked.sealed))
        if head_checked:  # else the head is what was known, and may have moved on since
            self._chain_heads[locked.chain] = locked.head

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
            drafted = change.values(locked.latest, locked.current)
        except KavachError as refusal:
            return refusal, None
        values = drafted.values
        new = service.NewVersion(
            values=values,
            message=change.message,
            author=change.author,
            parent=locked.latest,
            links=drafted.links,
        )
        version = service.draft_version(change.environment_id, new, pending.data_key[0])
        row = _expected(locked, change.environment_id)  # what it is made on, before it moves
        row.update(self._written(locked, pending.data_key, version, values, change))
        return version, row

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


def _expected(locked: _Locked, environment_id: uuid.UUID) -> dict[str, Any]:
    """Return what kavach_check_at_head expects stored before the next commit is written."""
    return {
        "environment_id": environment_id,
        "expected_version": locked.latest.id if locked.latest else None,
        "chain": locked.chain,
        "expected_seq": locked.head[0],
        "expected_hash": locked.head[1],
        "expected_epoch": locked.epoch,
    }
