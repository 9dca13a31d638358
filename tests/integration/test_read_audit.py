"""Reads of secret values are audited in shared transactions: every one, chained, or none served."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from kavach.server.audit.models import AuditEvent
from tests.conftest import InProcessServer
from tests.integration.test_access_cache import _setup
from tests.integration.test_resources import user


async def test_concurrent_reads_each_leave_one_chained_event(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    reads = await asyncio.gather(
        *(alice.call("GET", tree["secrets"], status=200) for _ in range(40))
    )
    assert all(body["secrets"] == {"DB_PASSWORD": "hunter2"} for body in reads)
    async with server.runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "secret.read")
        )
    assert count == 40
    verified = await alice.call(
        "GET", f"/audit/verify?organization_id={tree['org']['id']}", status=200
    )
    assert verified["intact"] is True
    assert verified["events"] >= 40


async def test_a_read_whose_event_cannot_be_written_is_refused(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    await alice.call("GET", tree["secrets"], status=200)
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        refused = await alice.call("GET", tree["secrets"], status=503)
        assert refused["error_code"] == "service_unavailable"
        assert "hunter2" not in str(refused)
    finally:
        async with server.runtime.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert (await alice.call("GET", tree["secrets"], status=200))["secrets"]["DB_PASSWORD"]
