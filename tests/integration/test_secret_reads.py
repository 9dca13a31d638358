"""Reads of the latest secrets: one pipeline, the same answers whether the gate's cache is warm.

The gate admits a caller it has cached without a query, provisionally; the read confirms that
admission against the access epoch read with the secrets, or has the caller decided again in
the database. Either way the answer, its headers and its audit event are the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kavach.server import gate as gate_module
from kavach.server.app import create_app
from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import ServiceToken
from kavach.server.db.base import utcnow
from kavach.server.db.driver import DriverPool
from kavach.server.errors import ServiceUnavailable
from kavach.server.gate import AccessGate, Admission, Ticket
from kavach.server.secrets.usecases import READ, WRITE
from tests.conftest import InProcessServer, make_settings, random_keys
from tests.integration.test_access_cache import _setup
from tests.integration.test_read_audit import _unreadable, read_events
from tests.integration.test_resources import Api, user

Tree = dict[str, Any]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none"


@dataclass
class Admissions:
    """What the gate answered: per action, whether each admission came from the cache.

    True: admitted from the cache without a query (provisionally); False: decided in the
    database. `moved` counts the provisional admissions the epoch read with the data did
    not confirm, so that the request was decided again.
    """

    seen: list[tuple[str, bool]] = field(default_factory=list)
    moved: int = 0

    def of(self, action: str) -> list[bool]:
        """Return, oldest first, whether each admission to `action` came from the cache."""
        return [cached for done, cached in self.seen if done == action]

    @property
    def reads(self) -> list[bool]:
        """Admissions to read secrets."""
        return self.of(READ)

    @property
    def commits(self) -> list[bool]:
        """Admissions to commit secrets."""
        return self.of(WRITE)


def watch_admissions(monkeypatch: pytest.MonkeyPatch) -> Admissions:
    """Record every admission of every gate (every app instance) and every refused confirm."""
    found = Admissions()
    admit = AccessGate.admit_provisionally
    confirm = AccessGate.confirm

    async def admit_spy(self: AccessGate, ticket: Ticket) -> Admission:
        admission = await admit(self, ticket)
        found.seen.append((ticket.action, not admission.checked))
        return admission

    def confirm_spy(self: AccessGate, admission: Admission, epoch: int | None) -> bool:
        holds = confirm(self, admission, epoch)
        found.moved += not holds
        return holds

    monkeypatch.setattr(AccessGate, "admit_provisionally", admit_spy)
    monkeypatch.setattr(AccessGate, "confirm", confirm_spy)
    return found


@pytest.fixture
def admitted(monkeypatch: pytest.MonkeyPatch) -> Admissions:
    """Every admission the gate gives during the test."""
    return watch_admissions(monkeypatch)


@pytest.fixture
async def alice(server: InProcessServer) -> Api:
    """Alice, signed in."""
    return await user(server, "alice")


@pytest.fixture
async def tree(alice: Api, admitted: Admissions) -> Tree:
    """Alice's organization, group and environment, with one secret committed (not yet read)."""
    made = await _setup(alice)
    assert admitted.reads == []
    return made


async def _read_events(server: InProcessServer) -> list[dict[str, Any]]:
    async with server.runtime.sessionmaker() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.read").order_by(AuditEvent.id)
        )
        return [
            {
                "actor": e.actor_label,
                "outcome": e.outcome,
                "details": e.details,
                "env": e.environment_id,
                "chain": e.chain,
            }
            for e in events
        ]


async def test_a_warm_read_answers_as_a_cold_one(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    cold = await server.client.get(f"/api/v1{tree['secrets']}", headers=alice.headers)
    warm = await server.client.get(f"/api/v1{tree['secrets']}", headers=alice.headers)
    assert admitted.reads == [False, True]
    assert admitted.moved == 0
    assert warm.status_code == cold.status_code == 200
    # The same headers (security headers and request id included), with the same values.
    assert set(warm.headers) == set(cold.headers)
    for name in set(cold.headers) - {"content-length", "x-request-id"}:
        assert warm.headers[name] == cold.headers[name], name
    assert warm.headers["x-request-id"] != cold.headers["x-request-id"]
    assert warm.json() == cold.json()
    assert warm.json()["data"]["secrets"] == {"DB_PASSWORD": "hunter2"}
    first, second = await _read_events(server)
    assert first == second
    assert first["actor"] == "alice" and first["outcome"] == "success"
    assert first["details"] == {
        "version_id": cold.json()["data"]["version"]["id"],
        "what": "secrets",
    }


async def test_an_empty_environment_reads_the_same_cold_and_warm(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    empty = await alice.call(
        "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "e"}, status=201
    )
    path = f"/environments/{empty['id']}/secrets"
    answers = [await alice.call("GET", path, status=200) for _ in range(2)]
    assert admitted.reads == [False, True]
    assert answers[0] == answers[1] == {"version": None, "secrets": {}, "sources": []}
    events = await _read_events(server)
    assert [e["details"] for e in events] == [{"version_id": None, "what": "secrets"}] * 2


async def test_a_warm_read_whose_event_cannot_be_written_sends_no_values(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
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
    assert admitted.reads == [False, True]
    assert refused["error_code"] == "service_unavailable"
    assert "hunter2" not in str(refused)
    assert len(await _read_events(server)) == 1


async def test_a_new_commit_is_read_at_once(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    made = await alice.call(
        "POST", f"{tree['secrets']}/versions", {"message": "m", "set": {"A": "1"}}, status=201
    )
    body = await alice.call("GET", tree["secrets"], status=200)
    assert body["secrets"] == {"A": "1", "DB_PASSWORD": "hunter2"}
    assert body["version"] == made
    assert admitted.reads == [False, True]


async def test_a_named_version_reads_as_the_latest_does(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    latest = await alice.call("GET", tree["secrets"], status=200)
    named = await alice.call("GET", f"{tree['secrets']}?version={latest['version']['id']}", 200)
    assert named == latest
    first, second = await _read_events(server)
    assert first == second


async def test_refusals_are_decided_in_the_database_every_time(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    stranger = await user(server, "mallory")
    for _ in range(2):  # a refusal is never cached, nor answered from what is
        refused = await stranger.call("GET", tree["secrets"], status=404)
        assert refused["error_code"] == "not_found"
    nobody = Api(server, "not-a-token")
    assert (await nobody.call("GET", tree["secrets"], status=401))["error_code"]
    unknown = await alice.call("GET", f"/environments/{uuid.uuid4()}/secrets", status=404)
    malformed = await alice.call("GET", "/environments/not-an-id/secrets", status=404)
    assert unknown == malformed
    # Only Alice's first read was admitted; each refusal was raised by the gate's decision.
    assert admitted.reads == [False]
    assert [e["actor"] for e in await _read_events(server)] == ["alice"]


async def test_a_role_lost_after_warm_reads_is_refused_at_once(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    bob = await user(server, "bob")
    members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "viewer"}, status=200)
    for _ in range(2):
        await bob.call("GET", tree["secrets"], status=200)
    assert admitted.reads == [False, True]
    await alice.call("DELETE", members, {"user": "bob"}, status=200)
    refused = await bob.call("GET", tree["secrets"], status=404)
    assert "hunter2" not in str(refused)
    # This process had not seen the change: the cache admitted Bob, the epoch read with the
    # secrets did not confirm it, and the database refused him.
    assert admitted.reads[-1] is True
    assert admitted.moved == 1
    assert [e["actor"] for e in await _read_events(server)] == ["bob", "bob"]


async def test_service_tokens_are_admitted_from_the_cache_between_recorded_uses(
    server: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await alice.call(
        "POST",
        f"/environments/{tree['env']['id']}/tokens",
        {"name": "ci", "role": "viewer"},
        status=201,
    )
    ci = Api(server, created["token"])

    async def last_used() -> Any:
        async with server.runtime.sessionmaker() as session:
            return await session.scalar(select(ServiceToken.last_used_at))

    await ci.call("GET", tree["secrets"], status=200)
    first_use = await last_used()
    for _ in range(2):
        assert (await ci.call("GET", tree["secrets"], status=200))["secrets"]
    assert admitted.reads == [False, True, True]
    assert await last_used() == first_use  # uses within a minute are not written
    # Two minutes later the cached token is due to record its use: it is decided in full.
    later = utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(gate_module, "utcnow", lambda: later)
    for _ in range(2):
        await ci.call("GET", tree["secrets"], status=200)
    assert await last_used() == later
    assert admitted.reads[-2:] == [False, True]
    # A restart forgets the token; the use the old record says is long past is recorded.
    long_ago = later - timedelta(hours=1)
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(update(ServiceToken).values(last_used_at=long_ago))
    server.runtime.access_cache.clear()
    await ci.call("GET", tree["secrets"], status=200)
    assert await last_used() == later
    assert admitted.reads[-1] is False
    await alice.call("DELETE", f"/environments/{tree['env']['id']}/tokens/{created['id']}")
    refused = await ci.call("GET", tree["secrets"], status=401)
    assert refused["error_code"] == "invalid_token"
    assert "hunter2" not in str(refused)


# Per day, not per minute: the limiter's sliding window weighs the window before, so a
# test that crossed a minute's end could be allowed one request more.
@pytest.mark.parametrize("auth_overrides", [{"rate_limit_api": "7/day"}])
async def test_the_rate_limit_counts_each_read_once_however_it_is_admitted(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    # Setting up the tree took four of the seven requests allowed.

    async def read() -> int:
        url = f"/api/v1{tree['secrets']}"
        return (await server.client.get(url, headers=alice.headers)).status_code

    assert [await read(), await read()] == [200, 200]
    # Access changes elsewhere: the next read is admitted from the cache, finds the epoch
    # moved and is decided again in the database, and is still counted once.
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("UPDATE access_epoch SET value = value + 1"))
    assert [await read(), await read()] == [200, 429]
    assert admitted.reads == [False, True, True]  # the last was refused at the gate
    assert admitted.moved == 1


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_reads_go_on_after_the_database_ends_every_connection(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    outside = create_async_engine(server.runtime.settings.database_url, poolclass=NullPool)
    # This server's connections only: other test runs use other databases.
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
    assert admitted.reads[0] is False and all(admitted.reads[1:])


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_unreachable_database_is_a_503_from_the_driver_pool(
    tmp_path: Path, backend: str
) -> None:
    settings = make_settings(tmp_path, UNREACHABLE)
    settings.db.db_pool_timeout = 2
    pool = DriverPool(settings)
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        async with pool.connection():
            pass
    await pool.close()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_unreachable_database_is_a_503_to_a_read(tmp_path: Path, backend: str) -> None:
    settings = make_settings(tmp_path, UNREACHABLE).model_copy(update={"auto_migrate": False})
    settings.db.db_pool_timeout = 2
    app = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get(
                f"/api/v1/environments/{uuid.uuid4()}/secrets",
                headers={"Authorization": "Bearer some-token"},
            )
        with pytest.raises(ServiceUnavailable, match="database is unavailable"):
            await app.state.runtime.secret_store.latest(uuid.uuid4())
    assert answer.status_code == 503
    assert answer.json()["error_code"] == "service_unavailable"


async def test_a_read_that_fails_to_decrypt_is_recorded_the_same_cold_and_warm(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    failed = await _unreadable(server, alice, tree["secrets"])
    cold = await alice.call("GET", tree["secrets"], status=503)
    warm = await alice.call("GET", tree["secrets"], status=503)
    assert admitted.reads == [False, True]
    assert warm == cold and warm["error_code"] == "decryption_failed"
    assert "alpha" not in str(warm)
    assert await read_events(server) == [("failure", failed), ("failure", failed)]
