"""Reads of secret values are audited in shared transactions: every one, chained, or none served."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select, text, update

from kavach.server.audit.models import AuditEvent
from kavach.server.secrets.models import Secret
from tests.conftest import InProcessServer
from tests.integration.test_access_cache import _setup
from tests.integration.test_resources import Api, user


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


async def _unreadable(server: InProcessServer, alice: Api, secrets: str) -> dict[str, str]:
    """Commit A and B, then give B A's ciphertext (which names A): B no longer decrypts."""
    version = await alice.call(
        "POST", f"{secrets}/versions", {"message": "m", "set": {"A": "alpha", "B": "beta"}}, 201
    )
    async with server.runtime.sessionmaker() as session, session.begin():
        sealed = await session.scalar(
            select(Secret.value_encrypted).where(
                Secret.version_id == version["id"], Secret.name == "A"
            )
        )
        await session.execute(
            update(Secret)
            .where(Secret.version_id == version["id"], Secret.name == "B")
            .values(value_encrypted=sealed)
        )
    return {"version_id": version["id"], "what": "secrets", "error": "decryption_failed"}


async def read_events(server: InProcessServer) -> list[tuple[str, dict[str, Any]]]:
    """Return the outcome and details of every read event, oldest first."""
    async with server.runtime.sessionmaker() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.read").order_by(AuditEvent.id)
        )
        return [(event.outcome, event.details) for event in events]


async def test_a_read_that_fails_to_decrypt_is_a_recorded_failure_everywhere(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    secrets = tree["secrets"]
    failed = await _unreadable(server, alice, secrets)
    version = failed["version_id"]
    reads = {
        secrets: "secrets",
        f"{secrets}?version={version}": "secrets",
        f"{secrets}/versions/{version}": "version",
        f"{secrets}/B/history?reveal=true": "history:B",
        f"{secrets}/diff?reveal=true": "diff",
    }
    for path, what in reads.items():
        refused = await alice.call("GET", path, status=503)
        assert refused["error_code"] == "decryption_failed", path
        assert "alpha" not in str(refused) and "beta" not in str(refused)
        *_, (outcome, details) = await read_events(server)
        assert (outcome, details) == ("failure", {**failed, "what": what}), path
    # Without values asked for, nothing is read, and nothing recorded; the status is the same.
    for path in (f"{secrets}/B/history", f"{secrets}/diff"):
        refused = await alice.call("GET", path, status=503)
        assert refused["error_code"] == "decryption_failed", path
    assert len(await read_events(server)) == len(reads)
    verified = await alice.call(
        "GET", f"/audit/verify?organization_id={tree['org']['id']}", status=200
    )
    assert verified["intact"] is True
