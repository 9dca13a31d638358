"""Appends to the audit chains: concurrent transactions never fork a chain, on any backend."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from kavach.server.access import SYSTEM
from kavach.server.audit import integrity
from kavach.server.audit import service as audit
from kavach.server.audit.chain import ChainReport, key_for
from kavach.server.audit.scope import EventScope
from kavach.server.audit.service import NewEvent
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
        reports = [await integrity.verify_chain(session, organization_id=org) for org in orgs]
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


async def _at_head(
    server: InProcessServer, chain: str, events: list[NewEvent], heads: dict[str, tuple[int, str]]
) -> None:
    pool = server.runtime.driver_pool
    assert pool is not None
    async with server.runtime.sessionmaker() as session, pool.connection() as connection:
        await audit.append_at_head(connection, key_for(session), chain, events, heads)


async def _verified(server: InProcessServer, organization_id: uuid.UUID) -> ChainReport:
    async with server.runtime.sessionmaker() as session:
        return await integrity.verify_chain(session, organization_id=organization_id)


@pytest.fixture
def locked_appends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the appends made under the chain's lock rather than at a known head."""
    counted: list[int] = []
    real = audit.append_with_driver

    async def spy(*args: Any) -> dict[str, tuple[int, str]]:
        counted.append(1)
        return await real(*args)

    monkeypatch.setattr(audit, "append_with_driver", spy)
    return counted


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_appends_at_the_known_head_fall_back_to_the_lock_when_it_moved(
    server: InProcessServer, backend: str, locked_appends: list[int]
) -> None:
    org = uuid.uuid4()
    chain = audit.chain_of(org)
    mine: dict[str, tuple[int, str]] = {}
    await _at_head(server, chain, [_event(org, 1), _event(org, 2)], mine)  # no head known
    await _at_head(server, chain, [_event(org, 3)], mine)  # at the head it knows
    assert (len(locked_appends), mine[chain][0]) == (1, 3)
    # Another server appends: the head this one knows is now stale, and nothing is written
    # at it; the events go under the lock, on the head found there.
    await _append(server, [_event(org, 4)])
    await _at_head(server, chain, [_event(org, 5), _event(org, 6)], mine)
    assert len(locked_appends) == 2
    report = await _verified(server, org)
    assert (report.broken, report.events, report.head_seq) == (None, 6, 6)
    assert mine[chain] == (6, report.head_hash)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_servers_appending_at_their_own_heads_never_fork_a_chain(
    server: InProcessServer, backend: str
) -> None:
    org = uuid.uuid4()
    chain = audit.chain_of(org)
    servers: list[dict[str, tuple[int, str]]] = [{}, {}, {}]

    async def appends(heads: dict[str, tuple[int, str]], start: int) -> None:
        for n in range(start, start + 10):
            await _at_head(server, chain, [_event(org, n), _event(org, n)], heads)

    await asyncio.gather(*(appends(heads, 100 * i) for i, heads in enumerate(servers)))
    report = await _verified(server, org)
    assert (report.broken, report.events, report.head_seq) == (None, 60, 60)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_appending_at_the_head_inside_a_transaction_is_refused(
    server: InProcessServer, backend: str
) -> None:
    pool = server.runtime.driver_pool
    assert pool is not None
    async with (
        server.runtime.sessionmaker() as session,
        pool.connection() as connection,
        connection.transaction(),
    ):
        with pytest.raises(RuntimeError, match="transaction of its own"):
            await audit.append_at_head(
                connection, key_for(session), "server", [_event(None, 1)], {}
            )
