"""Record audit events on their chain, list a scope's events, verify a chain.

Callers pass what happened, never secret values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy import ColumnElement, bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from kavach.server.access import Access, Actor, RequestOrigin
from kavach.server.audit import scope as scopes
from kavach.server.audit.chain import (
    COLUMNS,
    GENESIS,
    SERVER_CHAIN,
    AuditKey,
    key_for,
    normalized,
)
from kavach.server.audit.models import AuditEvent
from kavach.server.db.base import utcnow
from kavach.server.db.driver import DriverStatement
from kavach.server.db.engine import outside_transaction
from kavach.server.pages import Keyset, PageRequest


def chain_of(organization_id: uuid.UUID | None) -> str:
    """Name the chain of an organization's events (or of events outside any)."""
    return SERVER_CHAIN if organization_id is None else str(organization_id)


# Locks the chain (migration 0007) and returns its last event, in one round trip.
_PG_CHAIN_HEAD = text("SELECT head_seq, head_hash FROM kavach_audit_chain_head(:chain)")
_LAST_IN_CHAIN = (
    select(AuditEvent.chain_seq, AuditEvent.hash)
    .where(AuditEvent.chain == bindparam("chain"), AuditEvent.chain_seq.is_not(None))
    .order_by(AuditEvent.chain_seq.desc())
    .limit(1)
)
_INSERT = insert(AuditEvent)
_DRIVER_HEAD = DriverStatement.compile(_PG_CHAIN_HEAD)
_DRIVER_INSERT = DriverStatement.compile(
    insert(AuditEvent).values({name: bindparam(name) for name in COLUMNS})
)
NOT_AT_HEAD = "KV409"  # the SQLSTATE of the checks of migration 0009


def _insert_at_head() -> DriverStatement:
    """Insert an event, once the chain's head is checked to be the one it is chained on."""
    table = AuditEvent.__table__.c
    values = {name: bindparam(name, type_=table[name].type) for name in COLUMNS}
    check = func.kavach_check_chain_head(
        values["chain"], values["chain_seq"] - 1, values["prev_hash"]
    )
    guard = select(check.label("passed")).cte("guard")
    return DriverStatement.compile(
        insert(AuditEvent).from_select(COLUMNS, select(*values.values()).select_from(guard))
    )


_DRIVER_INSERT_AT_HEAD = _insert_at_head()


async def _lock_heads(connection: AsyncConnection, chains: set[str]) -> dict[str, tuple[int, str]]:
    """Lock each chain until this transaction ends and return its last (seq, hash).

    PostgreSQL: a lock per chain, taken in one order by every appender so that two never
    wait on each other. SQLite: every transaction here holds the database's write lock from
    its start (BEGIN IMMEDIATE), so appends are already serial.
    """
    if connection.sync_connection and outside_transaction(connection.sync_connection):
        raise RuntimeError("audit events are appended inside a transaction")
    postgres = connection.dialect.name == "postgresql"
    heads = {}
    for chain in sorted(chains):
        query = _PG_CHAIN_HEAD if postgres else _LAST_IN_CHAIN
        heads[chain] = chain_head((await connection.execute(query, {"chain": chain})).first())
    return heads


@dataclass(frozen=True)
class NewEvent:
    """An event to append, with its place in the tree already known."""

    actor: Actor
    action: str
    where: scopes.EventScope
    outcome: str = "success"
    origin: RequestOrigin = RequestOrigin()  # noqa: RUF009 - frozen: one default is safe
    resource_type: str | None = None
    resource_id: str | None = None
    details: dict[str, Any] | None = None


async def append(session: AsyncSession, events: list[NewEvent]) -> None:
    """Append events to their chains, in order, in the current transaction."""
    key = key_for(session)
    connection = await session.connection()
    heads = await _lock_heads(connection, _chains(events))
    # Inserted as plain rows: the events are not needed as objects in this session.
    await connection.execute(_INSERT, _chained(key, events, heads))


async def append_with_driver(
    driver: asyncpg.Connection, key: AuditKey, events: list[NewEvent]
) -> dict[str, tuple[int, str]]:
    """Append events in the driver connection's transaction, on asyncpg directly (PostgreSQL).

    Returns the head of each chain appended to, as it stands after the events.
    """
    if not driver.is_in_transaction():
        raise RuntimeError("audit events are appended inside a transaction")
    heads = {}
    for chain in sorted(_chains(events)):  # one order for every appender, as _lock_heads
        row = await driver.fetchrow(*_DRIVER_HEAD.bound({"chain": chain}))
        heads[chain] = chain_head(row)
    rows = driver_rows(key, events, heads)
    await driver.executemany(_DRIVER_INSERT.sql, [_DRIVER_INSERT.args(r) for r in rows])
    return heads


async def append_at_head(
    driver: asyncpg.Connection,
    key: AuditKey,
    chain: str,
    events: list[NewEvent],
    heads: dict[str, tuple[int, str]],
) -> None:
    """Append one chain's events, committed by the time this returns (PostgreSQL).

    The events are chained on the head this server last saw (`heads`, kept current here)
    and sent as one pipeline outside a transaction, which the database runs as one: each
    insert first checks, under the chain's lock, that the head is the one it is chained on.
    If another server appended meanwhile, nothing is written and the events are appended
    under the chain's lock in a transaction instead, as they are when no head is known.
    """
    if driver.is_in_transaction():
        raise RuntimeError("an append at the head is a transaction of its own")
    known = heads.get(chain)
    if known is not None:
        moved = {chain: known}
        rows = driver_rows(key, events, moved)
        statement = _DRIVER_INSERT_AT_HEAD
        try:
            if len(rows) == 1:  # a read's lone event: the simpler protocol costs less
                await driver.execute(statement.sql, *statement.args(rows[0]))
            else:
                await driver.executemany(statement.sql, [statement.args(row) for row in rows])
        except asyncpg.PostgresError as error:
            if error.sqlstate != NOT_AT_HEAD:
                raise
        else:
            heads[chain] = moved[chain]
            return
    async with driver.transaction():
        found = await append_with_driver(driver, key, events)
    # What was just found under the lock, even if an earlier head was recorded since: a
    # stale entry costs one miss, where keeping only later ones could keep one forever
    # (after a restore from backup, say).
    heads[chain] = found[chain]


def driver_rows(
    key: AuditKey, events: list[NewEvent], heads: dict[str, tuple[int, str]]
) -> list[dict[str, Any]]:
    """Return the events as the driver inserts them: chained, signed, details as JSON text."""
    rows = _chained(key, events, heads)
    for row in rows:
        row["details"] = orjson.dumps(row["details"]).decode()  # the driver takes JSON as text
    return rows


def _chains(events: list[NewEvent]) -> set[str]:
    return {chain_of(event.where.organization_id) for event in events}


def chain_head(row: Any) -> tuple[int, str]:
    """Return a chain's last (seq, hash) from its row, or the start of an empty chain.

    A damaged last event still gets a successor (verification reports the damage);
    recording must not start failing because of it.
    """
    return (0, GENESIS) if row is None else (int(row[0] or 0), str(row[1] or ""))


def _chained(
    key: AuditKey, events: list[NewEvent], heads: dict[str, tuple[int, str]]
) -> list[dict[str, Any]]:
    """Return the events as rows, each linked to the one before it in its chain and signed."""
    rows = []
    for new in events:
        chain = chain_of(new.where.organization_id)
        seq, prev_hash = heads[chain]
        row: dict[str, Any] = {
            "occurred_at": utcnow(),
            "actor_type": new.actor.type,
            "actor_id": new.actor.id,
            "actor_label": new.actor.label,
            "action": new.action,
            "outcome": new.outcome,
            "client_address": new.origin.client_address,
            "request_id": new.origin.request_id,
            "resource_type": new.resource_type,
            "resource_id": new.resource_id,
            "details": normalized(new.details),
            "organization_id": new.where.organization_id,
            "secret_group_id": new.where.secret_group_id,
            "environment_id": new.where.environment_id,
            "chain": chain,
            "chain_seq": seq + 1,
            "prev_hash": prev_hash,
            "key_id": key.id,
        }
        row["hash"] = key.sign(row)
        heads[chain] = (seq + 1, row["hash"])
        rows.append(row)
    return rows


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    origin: RequestOrigin | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit event to its chain, in the current transaction."""
    await session.flush()  # resources created in this transaction must be findable
    where = await scopes.resolve(session, resource_type=resource_type, resource_id=resource_id)
    event = NewEvent(
        actor=actor,
        action=action,
        where=where,
        outcome=outcome,
        origin=origin or RequestOrigin(),
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )
    await append(session, [event])


async def record_request(
    session: AsyncSession,
    access: Access,
    origin: RequestOrigin,
    action: str,
    resource_type: str,
    resource_id: object,
    /,
    **details: object,
) -> None:
    """Record what an authorized request did to a resource, as `record` does."""
    await record(
        session,
        actor=access.principal.actor,
        action=action,
        origin=origin,
        resource_type=resource_type,
        resource_id=str(resource_id),
        details=details,
    )


def in_scope(
    *,
    organization_id: uuid.UUID | None = None,
    secret_group_id: uuid.UUID | None = None,
    environment_id: uuid.UUID | None = None,
) -> ColumnElement[bool]:
    """Match the events of the most specific level given (and everything below it)."""
    if environment_id is not None:
        return AuditEvent.environment_id == environment_id
    if secret_group_id is not None:
        return AuditEvent.secret_group_id == secret_group_id
    return AuditEvent.organization_id == organization_id


EVENTS = Keyset("audit-events", AuditEvent.id, descending=True)


async def list_events(
    session: AsyncSession, *, where: ColumnElement[bool], request: PageRequest
) -> tuple[list[AuditEvent], str | None]:
    """Return a page of events, newest first, and the cursor of the next page (or None)."""
    found = list(await session.scalars(EVENTS.page(select(AuditEvent).where(where), request)))
    return EVENTS.cut(found, request, lambda event: (event.id,))
