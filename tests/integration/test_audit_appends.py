"""Appends to the audit chains: concurrent transactions never fork a chain, on any backend."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from kavach.server.audit import service as audit
from kavach.server.audit.chain import key_for
from kavach.server.audit.scope import EventScope
from kavach.server.audit.service import SYSTEM, NewEvent
from tests.conftest import InProcessServer

# The lock every append took before per-chain locks (migration 0007).
_OLD_GLOBAL_LOCK = 0x4B415544


def _event(organization_id: uuid.UUID | None, n: int) -> NewEvent:
    return NewEvent(
        actor=SYSTEM,
        action="test.append",
        where=EventScope(organization_id),
        details={"n": n},
    )


async def _append(server: InProcessServer, events: list[NewEvent], driver: bool = False) -> None:
    """Append in a transaction of the ORM's session, or of asyncpg's (as read batches do)."""
    async with server.runtime.sessionmaker() as session:
        if driver:
            pool = server.runtime.driver_pool
            assert pool is not None
            async with pool.connection() as connection, connection.transaction():
                await audit.append_with_driver(connection, key_for(session), events)
            return
        async with session.begin():
            await audit.append(session, events)


async def test_concurrent_appends_to_several_chains_stay_intact(server: InProcessServer) -> None:
    orgs: list[uuid.UUID | None] = [uuid.uuid4(), uuid.uuid4(), None]
    # Each transaction appends to every chain, in a different order each time.
    batches = [
        [_event(orgs[(i + j) % 3], i) for j in range(3)] + [_event(orgs[i % 3], i)]
        for i in range(30)
    ]
    # On PostgreSQL every other transaction appends through the driver, as read batches do.
    postgres = server.runtime.engine.dialect.name == "postgresql"
    await asyncio.gather(
        *(_append(server, batch, driver=postgres and i % 2 == 1) for i, batch in enumerate(batches))
    )
    async with server.runtime.sessionmaker() as session:
        reports = [await audit.verify_chain(session, organization_id=org) for org in orgs]
    assert [report.broken for report in reports] == [None, None, None]
    assert [report.events for report in reports] == [40, 40, 40]
    assert [report.head_seq for report in reports] == [40, 40, 40]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_appends_wait_for_a_server_holding_the_old_global_lock(
    server: InProcessServer, backend: str
) -> None:
    """During a rolling upgrade, servers of before migration 0007 still exclude newer ones."""
    async with server.runtime.engine.connect() as old_server:
        await old_server.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": _OLD_GLOBAL_LOCK}
        )
        waiting = asyncio.create_task(_append(server, [_event(uuid.uuid4(), 1)]))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await old_server.commit()
        await asyncio.wait_for(waiting, timeout=10)


async def test_appending_outside_a_transaction_is_refused(server: InProcessServer) -> None:
    async with server.runtime.read_sessionmaker() as session:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await audit.append(session, [_event(None, 1)])


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_appending_through_the_driver_outside_a_transaction_is_refused(
    server: InProcessServer, backend: str
) -> None:
    pool = server.runtime.driver_pool
    assert pool is not None
    async with server.runtime.sessionmaker() as session, pool.connection() as connection:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await audit.append_with_driver(connection, key_for(session), [_event(None, 1)])
