"""The lean read of the latest secrets (PostgreSQL): same answers and checks as the general path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import ServiceToken
from kavach.server.db.base import utcnow
from kavach.server.db.driver import DriverPool
from kavach.server.errors import ServiceUnavailable
from kavach.server.secrets import fast
from tests.conftest import InProcessServer, make_settings
from tests.integration.test_access_cache import _setup
from tests.integration.test_read_audit import _unreadable, read_events
from tests.integration.test_resources import Api, user

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for every read of the latest secrets, whether the lean path answered it."""
    answers: list[bool] = []
    real = fast.read_latest

    async def spy(request: Any) -> fast.FastRead | None:
        found = await real(request)
        answers.append(found is not None)
        return found

    monkeypatch.setattr(fast, "read_latest", spy)
    return answers


Tree = dict[str, Any]


@pytest.fixture
async def alice(server: InProcessServer) -> Api:
    """Alice, signed in."""
    return await user(server, "alice")


@pytest.fixture
async def tree(alice: Api) -> Tree:
    """Alice's organization, group and environment, with one secret committed."""
    return await _setup(alice)


async def _read_events(server: InProcessServer) -> list[dict[str, Any]]:
    async with server.runtime.sessionmaker() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.read").order_by(AuditEvent.id)
        )
        return [
            {"actor": e.actor_label, "details": e.details, "env": e.environment_id} for e in events
        ]


async def test_lean_answers_equal_the_general_ones(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    general = await server.client.get(f"/api/v1{tree['secrets']}", headers=alice.headers)
    lean = await server.client.get(f"/api/v1{tree['secrets']}", headers=alice.headers)
    assert served == [False, True]
    assert lean.status_code == general.status_code == 200
    # The same headers (security headers and request id included), with the same values.
    assert set(lean.headers) == set(general.headers)
    for name in set(general.headers) - {"content-length", "x-request-id"}:
        assert lean.headers[name] == general.headers[name], name
    assert lean.headers["x-request-id"] != general.headers["x-request-id"]
    assert lean.json() == general.json()
    assert lean.json()["data"]["secrets"] == {"DB_PASSWORD": "hunter2"}
    first, second = await _read_events(server)
    assert first == second
    assert first["details"] == {
        "version_id": general.json()["data"]["version"]["id"],
        "what": "secrets",
    }


async def test_an_empty_environment_reads_the_same(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    empty = await alice.call(
        "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "e"}, status=201
    )
    path = f"/environments/{empty['id']}/secrets"
    answers = [await alice.call("GET", path, status=200) for _ in range(2)]
    assert served == [False, True]
    assert answers[0] == answers[1] == {"version": None, "secrets": {}}


async def test_a_lean_read_whose_event_cannot_be_written_sends_no_values(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        # The values are decrypted while the event commits; they are sent only if it does.
        refused = await alice.call("GET", tree["secrets"], status=503)
    finally:
        async with server.runtime.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert served == [False, True]
    assert refused["error_code"] == "service_unavailable"
    assert "hunter2" not in str(refused)
    assert len(await _read_events(server)) == 1


async def test_a_new_commit_is_read_at_once(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    await alice.call(
        "POST", f"{tree['secrets']}/versions", {"message": "m", "set": {"A": "1"}}, status=201
    )
    body = await alice.call("GET", tree["secrets"], status=200)
    assert body["secrets"] == {"A": "1", "DB_PASSWORD": "hunter2"}
    assert served[-1] is True


async def test_other_queries_and_unknown_callers_take_the_general_path(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    latest = await alice.call("GET", tree["secrets"], status=200)
    await alice.call("GET", f"{tree['secrets']}?version={latest['version']['id']}", status=200)
    stranger = await user(server, "mallory")
    refused = await stranger.call("GET", tree["secrets"], status=404)
    assert refused["error_code"] == "not_found"
    nobody = Api(server, "not-a-token")
    assert (await nobody.call("GET", tree["secrets"], status=401))["error_code"]
    # A query string is left to the general path without trying the lean one.
    assert served == [False, False, False]


async def test_service_tokens_read_lean_between_recorded_uses(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    created = await alice.call(
        "POST",
        f"/environments/{tree['env']['id']}/tokens",
        {"name": "ci", "role": "viewer"},
        status=201,
    )
    ci = Api(server, created["token"])
    for _ in range(3):
        assert (await ci.call("GET", tree["secrets"], status=200))["secrets"]
    assert served == [False, True, True]
    # Over a minute later the next use must be recorded, which the general path does.
    long_ago = utcnow() - timedelta(hours=1)
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(update(ServiceToken).values(last_used_at=long_ago))
    server.runtime.access_cache.clear()  # as a restart would: the cached copy is younger
    await ci.call("GET", tree["secrets"], status=200)
    await ci.call("GET", tree["secrets"], status=200)
    async with server.runtime.sessionmaker() as session:
        used = await session.scalar(select(ServiceToken.last_used_at))
    assert used is not None and used > long_ago
    assert served[-2:] == [False, True]
    await alice.call("DELETE", f"/environments/{tree['env']['id']}/tokens/{created['id']}")
    refused = await ci.call("GET", tree["secrets"], status=401)
    assert refused["error_code"] == "invalid_token"
    assert served[-1] is False


@pytest.mark.parametrize("auth_overrides", [{"rate_limit_api": "7/minute"}])
async def test_the_rate_limit_holds_for_lean_reads_and_counts_each_once(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    # Setting up the tree took four of the seven requests allowed.

    async def read() -> int:
        url = f"/api/v1{tree['secrets']}"
        return (await server.client.get(url, headers=alice.headers)).status_code

    assert [await read(), await read()] == [200, 200]
    # Access changes elsewhere: the next read starts the lean way, finds the epoch moved and
    # is answered by the general path, and is still counted once.
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("UPDATE access_epoch SET value = value + 1"))
    assert [await read(), await read()] == [200, 429]
    assert served == [False, True, False]  # the last was refused before reading


async def test_reads_go_on_after_the_database_ends_every_connection(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    outside = create_async_engine(server.runtime.settings.database_url, poolclass=NullPool)
    terminate = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'kavach' AND datname = current_database()"
    )
    count = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "secret.read")
    try:
        async with outside.connect() as connection:
            assert await connection.scalar(terminate)
        answers = [await alice.call("GET", tree["secrets"]) for _ in range(3)]
        # The driver's pool usually notices the ended connections before the next use; a
        # read that meets one anyway is a 503 without values, never anything else.
        for answer in answers:
            assert "secrets" in answer or answer["error_code"] == "service_unavailable", answer
            assert "secrets" in answer or "hunter2" not in str(answer)
        assert answers[-1]["secrets"] == {"DB_PASSWORD": "hunter2"}
        async with outside.connect() as connection:
            reads = await connection.scalar(count)
    finally:
        await outside.dispose()
    assert reads == sum(1 for a in answers if "secrets" in a) + 1


async def test_an_unreachable_database_is_a_503_from_the_driver_pool(
    tmp_path: Path, backend: str
) -> None:
    settings = make_settings(tmp_path, "postgresql://postgres@127.0.0.1:1/none")
    settings.db.db_pool_timeout = 2
    pool = DriverPool(settings)
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        async with pool.connection():
            pass
    await pool.close()


async def test_a_lean_read_that_fails_to_decrypt_is_recorded_as_the_general_one_is(
    server: InProcessServer, backend: str, served: list[bool], alice: Api, tree: Tree
) -> None:
    failed = await _unreadable(server, alice, tree["secrets"])
    # A query string always goes the general way, which fills the caches (data key too).
    general = await alice.call("GET", f"{tree['secrets']}?version={failed['version_id']}", 503)
    lean = await alice.call("GET", tree["secrets"], status=503)
    assert served == [True]
    assert lean == general and lean["error_code"] == "decryption_failed"
    assert "alpha" not in str(lean)
    assert await read_events(server) == [("failure", failed), ("failure", failed)]
