"""The audit trail: hash chains per organization, the audit API, tampering found, headers, CORS."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import Uuid, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from kavach.server.app import create_app
from kavach.server.audit import integrity
from kavach.server.audit.chain import SERVER_CHAIN
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.offline import verify_all
from kavach.server.db.base import utcnow
from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import alembic_config
from kavach.server.errors import ConfigurationError
from kavach.server.iam.models import User
from kavach.server.settings import Settings
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    InProcessServer,
    make_settings,
    random_keys,
    truncate_all,
)
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.test_resources import Api, user

SECRET_VALUE = "s3cr3t-never-in-the-audit-trail"


async def _tree(alice: Api, org_name: str = "acme") -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": org_name}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    envs = {}
    for name in ("prod", "dev"):
        envs[name] = await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": name}, status=201
        )
    return {"org": org, "group": group, "prod": envs["prod"], "dev": envs["dev"]}


async def _commit(api: Api, env_id: str, values: dict[str, str]) -> None:
    await api.call(
        "POST", f"/environments/{env_id}/secrets/versions", {"message": "m", "set": values}, 201
    )


async def _events(api: Api, query: str, status: int = 200) -> Any:
    return await api.call("GET", f"/audit?{query}", status=status)


async def _verify(api: Api, org_id: str) -> dict[str, Any]:
    report: dict[str, Any] = await api.call(
        "GET", f"/audit/verify?organization_id={org_id}", status=200
    )
    return report


async def _chain_rows(server: InProcessServer, chain: str) -> list[AuditEvent]:
    async with server.runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.chain_seq)
        )
        return list(rows)


async def _tamper(server: InProcessServer, statement: Any) -> None:
    """Change the table behind the server's back, as someone with database access could."""
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(statement)


# --- the chain ----------------------------------------------------------------------------


async def test_chain_stays_intact_under_concurrent_requests(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    prod, dev = tree["prod"]["id"], tree["dev"]["id"]
    for i in range(5):
        await _commit(alice, prod, {f"K{i}": SECRET_VALUE})
    reads = [
        alice.server.client.get(f"/api/v1/environments/{env}/secrets", headers=alice.headers)
        for env in (prod, dev) * 15
    ]
    writes = [
        alice.server.client.post(
            f"/api/v1/organizations/{tree['org']['id']}/secret-groups",
            json={"name": f"g{i}"},
            headers=alice.headers,
        )
        for i in range(10)
    ]
    responses = await asyncio.gather(*reads, *writes)
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses]

    rows = await _chain_rows(server, tree["org"]["id"])
    assert [row.chain_seq for row in rows] == list(range(1, len(rows) + 1))
    assert all(row.prev_hash == before.hash for before, row in itertools.pairwise(rows))
    # organization, group, 2 environments, 5 commits, 30 reads, 10 groups
    assert len(rows) == 1 + 1 + 2 + 5 + 30 + 10
    report = await _verify(alice, tree["org"]["id"])
    assert report["intact"] is True and report["broken"] is None
    assert report["events"] == len(rows)
    assert (report["head_seq"], report["head_hash"]) == (rows[-1].chain_seq, rows[-1].hash)
    # Logins are outside any organization: they chain on the server's own chain.
    server_rows = await _chain_rows(server, SERVER_CHAIN)
    assert [row.action for row in server_rows].count("auth.login") == 1
    assert all(row.organization_id is None for row in server_rows)


async def test_changed_details_are_found_and_named(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    await _commit(alice, tree["prod"]["id"], {"A": "1"})
    rows = await _chain_rows(server, tree["org"]["id"])
    victim = rows[2]
    await _tamper(
        server,
        update(AuditEvent).where(AuditEvent.id == victim.id).values(details={"name": "other"}),
    )
    report = await _verify(alice, tree["org"]["id"])
    assert report["intact"] is False
    broken = report["broken"]
    assert (broken["reason"], broken["event_id"], broken["seq"]) == ("modified", victim.id, 3)
    assert f"id {victim.id}" in broken["message"]
    assert report["events"] == 2  # the events before it were verified


async def test_a_deleted_event_is_found_and_named(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    await _commit(alice, tree["prod"]["id"], {"A": "1"})
    rows = await _chain_rows(server, tree["org"]["id"])
    gone, after = rows[1], rows[2]
    await _tamper(server, delete(AuditEvent).where(AuditEvent.id == gone.id))
    broken = (await _verify(alice, tree["org"]["id"]))["broken"]
    assert (broken["reason"], broken["seq"], broken["event_id"]) == ("missing", 2, None)
    assert "event #2 is missing" in broken["message"]
    assert f"id {after.id}" in broken["message"]


async def test_renumbering_or_rehashing_without_the_key_is_found(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    rows = await _chain_rows(server, tree["org"]["id"])
    # Hide event #2 by closing the gap: #3 becomes #2, but it does not follow #1.
    await _tamper(server, delete(AuditEvent).where(AuditEvent.id == rows[1].id))
    await _tamper(server, update(AuditEvent).where(AuditEvent.id == rows[2].id).values(chain_seq=2))
    broken = (await _verify(alice, tree["org"]["id"]))["broken"]
    assert (broken["reason"], broken["seq"], broken["event_id"]) == ("relinked", 2, rows[2].id)

    # A forged hash under another key (a plain digest, say) is not this server's.
    await _tamper(
        server,
        update(AuditEvent)
        .where(AuditEvent.id == rows[0].id)
        .values(details={"name": "x"}, hash="0" * 64, key_id="forged"),
    )
    broken = (await _verify(alice, tree["org"]["id"]))["broken"]
    assert (broken["reason"], broken["event_id"]) == ("unknown_key", rows[0].id)


async def test_an_event_taken_out_of_the_chain_is_found(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    last = (await _chain_rows(server, tree["org"]["id"]))[-1]
    await _tamper(
        server,
        update(AuditEvent)
        .where(AuditEvent.id == last.id)
        .values(chain=None, chain_seq=None, hash=None, prev_hash=None),
    )
    broken = (await _verify(alice, tree["org"]["id"]))["broken"]
    assert (broken["reason"], broken["event_id"]) == ("unchained", last.id)


async def test_recording_goes_on_after_the_last_event_was_damaged(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    last = (await _chain_rows(server, tree["org"]["id"]))[-1]
    await _tamper(server, update(AuditEvent).where(AuditEvent.id == last.id).values(hash=None))
    await alice.call(
        "POST", f"/organizations/{tree['org']['id']}/secret-groups", {"name": "more"}, status=201
    )
    broken = (await _verify(alice, tree["org"]["id"]))["broken"]
    assert (broken["reason"], broken["event_id"]) == ("modified", last.id)


async def _forge(server: InProcessServer, **columns: Any) -> int:
    """Insert an event without a chain behind the server's back; return its id."""
    async with server.runtime.sessionmaker() as session, session.begin():
        event = AuditEvent(actor_type="user", action="forged", outcome="success", details={})
        for name, value in columns.items():
            setattr(event, name, value)
        session.add(event)
        await session.flush()
        return event.id


@pytest.mark.parametrize("shape", ["older_id", "next_id", "environment_only", "other_chain"])
async def test_an_event_added_outside_the_chain_is_found_and_marked(
    server: InProcessServer, shape: str
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    org, prod = uuid.UUID(tree["org"]["id"]), uuid.UUID(tree["prod"]["id"])
    shapes: dict[str, dict[str, Any]] = {
        # Shaped like an event from before chaining: an id below every chained one.
        "older_id": {"id": 0, "organization_id": org},
        "next_id": {"organization_id": org},
        # Listed under the environment only: its organization left blank.
        "environment_only": {"environment_id": prod},
        # Claiming a chain that is not its organization's, with a made-up place and hash.
        "other_chain": {
            "organization_id": org,
            "chain": str(uuid.uuid4()),
            "chain_seq": 1,
            "prev_hash": "0" * 64,
            "hash": "1" * 64,
        },
    }
    columns = shapes[shape]
    forged = await _forge(server, **columns)

    report = await _verify(alice, tree["org"]["id"])
    assert report["intact"] is False and report["legacy_events"] == 0
    broken = report["broken"]
    assert (broken["reason"], broken["event_id"]) == ("unchained", forged)
    assert f"event id {forged} is not on the chain" in broken["message"]

    scope = f"environment_id={prod}" if shape == "environment_only" else f"organization_id={org}"
    listed = {e["id"]: e for e in (await _events(alice, scope))["items"]}
    assert listed[forged]["chain_status"] == "unchained"
    assert {e["chain_status"] for i, e in listed.items() if i != forged} == {"chained"}


async def test_events_recorded_before_chaining_are_counted_and_marked(
    backend: str, tmp_path: Path
) -> None:
    async with _fresh_database(backend) as url:
        settings = make_settings(tmp_path / "data", url)
        engine = create_engine(settings)
        try:
            await _upgrade(engine, "0004")
            org = uuid.uuid4()
            async with engine.begin() as conn:
                for _ in range(2):  # as recorded then: no scope, no chain
                    await conn.execute(
                        text(
                            "INSERT INTO audit_events (occurred_at, actor_type, action, "
                            "resource_type, resource_id, outcome, details) "
                            "VALUES (:t, 'user', 'organization.create', 'organization', :r, "
                            "'success', '{}')"
                        ),
                        {"t": utcnow(), "r": str(org)},
                    )
            await _upgrade(engine, "head")
        finally:
            await engine.dispose()
        async with _instance(settings) as server:
            alice = await user(server, "alice")
            await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
            async with server.runtime.sessionmaker() as session:
                assert (await integrity.verify_chain(session, organization_id=None)).intact
                report = await integrity.verify_chain(session, organization_id=org)
            # The events of an organization that existed then: outside any chain, counted.
            assert (report.intact, report.legacy, report.events) == (True, 2, 0)
            async with server.runtime.sessionmaker() as session:
                stored = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
            first = await _first_chained(server)
            statuses = [integrity.chain_status(e, first) for e in stored]
            assert statuses[:2] == ["legacy", "legacy"]
            assert set(statuses[2:]) == {"chained"}

            # One more shaped like them, added now: its id comes after the chain began.
            forged = await _forge(server, organization_id=org)
            async with server.runtime.sessionmaker() as session:
                report = await integrity.verify_chain(session, organization_id=org)
            assert report.broken is not None and report.legacy == 2
            assert (report.broken.reason, report.broken.event_id) == ("unchained", forged)


async def _first_chained(server: InProcessServer) -> int | None:
    async with server.runtime.sessionmaker() as session:
        return await integrity.first_chained_id(session)


@asynccontextmanager
async def _instance(settings: Settings) -> AsyncIterator[InProcessServer]:
    """An app on a database as it stands (nothing emptied first)."""
    app = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://127.0.0.1",
        )
        async with client:
            yield InProcessServer(app=app, client=client)


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    """Migrate the engine's database to a revision."""

    def run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()


# --- the audit API ----------------------------------------------------------------------


async def test_owners_and_admins_see_their_scope_others_do_not(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    org, group = tree["org"]["id"], tree["group"]["id"]
    prod, dev = tree["prod"]["id"], tree["dev"]["id"]
    await _commit(alice, prod, {"API_KEY": SECRET_VALUE})
    await _commit(alice, dev, {"API_KEY": SECRET_VALUE})
    bob, carol, dave, erin = [await user(server, n) for n in ("bob", "carol", "dave", "erin")]
    for who, role, where in (
        ("bob", "admin", f"/organizations/{org}"),
        ("carol", "viewer", f"/organizations/{org}"),
        ("erin", "admin", f"/environments/{prod}"),
    ):
        await alice.call("POST", f"{where}/members", {"user": who, "role": role}, status=200)
    await alice.call("GET", f"/environments/{prod}/secrets", status=200)

    owner_view = await _events(alice, f"organization_id={org}")
    admin_view = await _events(bob, f"organization_id={org}")
    assert owner_view == admin_view
    actions = [e["action"] for e in owner_view["items"]]
    assert actions[0] == "secret.read"  # newest first
    assert {"organization.create", "secret_group.create", "environment.create"} <= set(actions)
    assert actions.count("member.grant") == 3 and actions.count("secret.commit") == 2
    assert all(e["organization_id"] == org for e in owner_view["items"])
    assert SECRET_VALUE not in str(owner_view)

    for caller, status in ((carol, 403), (dave, 404)):
        body = await _events(caller, f"organization_id={org}", status=status)
        assert body["error_code"] == ("forbidden" if status == 403 else "not_found")
        await caller.call("GET", f"/audit/verify?organization_id={org}", status=status)

    # An admin of one environment sees that environment's events and nothing else.
    env_view = await _events(erin, f"environment_id={prod}")
    assert {e["environment_id"] for e in env_view["items"]} == {prod}
    assert [e["action"] for e in env_view["items"]] == [
        "secret.read",
        "member.grant",
        "secret.commit",
        "environment.create",
    ]
    await _events(erin, f"environment_id={dev}", status=404)
    await _events(erin, f"secret_group_id={group}", status=403)
    await _events(erin, f"organization_id={org}", status=403)
    await erin.call("GET", f"/audit/verify?organization_id={org}", status=403)

    group_view = await _events(alice, f"secret_group_id={group}")
    assert {e["environment_id"] for e in group_view["items"]} == {None, prod, dev}
    assert {e["secret_group_id"] for e in group_view["items"]} == {group}


async def test_pages_newest_first_without_overlap(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    org = tree["org"]["id"]
    everything = (await _events(alice, f"organization_id={org}&limit=500"))["items"]
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4
    seen: list[int] = []
    cursors: list[str] = []
    while True:
        after = f"&cursor={cursors[-1]}" if cursors else ""
        page = await _events(alice, f"organization_id={org}&limit=3{after}")
        seen += [e["id"] for e in page["items"]]
        if page["next"] is None:
            break
        cursors.append(page["next"])
    assert seen == ids and len(cursors) == 1
    # A cursor names its listing: one from another listing, or altered, is refused.
    group = tree["group"]["id"]
    envs = await alice.call("GET", f"/secret-groups/{group}/environments?limit=1")
    assert envs["next"] is not None
    for cursor in (envs["next"], cursors[0][:-2], "not-a-cursor"):
        body = await _events(alice, f"organization_id={org}&cursor={cursor}", status=422)
        assert body["error_code"] == "validation_failed"


@pytest.mark.parametrize(
    "query",
    ["", "limit=5", "organization_id=nope", "limit=0&organization_id={org}", "limit=1001"],
)
async def test_bad_queries_are_422(server: InProcessServer, query: str) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    body = await _events(alice, query.format(org=tree["org"]["id"]), status=422)
    assert body["error_code"] == "validation_failed"


async def test_two_scopes_at_once_are_422(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    query = f"organization_id={tree['org']['id']}&environment_id={tree['prod']['id']}"
    assert (await _events(alice, query, status=422))["error_code"] == "validation_failed"


async def _filtered(api: Api, scope: str, **filters: str) -> list[dict[str, Any]]:
    """Return every event of a scope that passes the filters, newest first."""
    found = await _events(api, f"{scope}&{urlencode(filters)}&limit=1000")
    items: list[dict[str, Any]] = found["items"]
    return items


async def _bob_and_a_token_act(server: InProcessServer, alice: Api, env_id: str) -> None:
    """Bob (an editor) commits and reads; a service token named ci reads."""
    bob = await user(server, "bob")
    grant = {"user": "bob", "role": "editor"}
    await alice.call("POST", f"/environments/{env_id}/members", grant, status=200)
    await _commit(bob, env_id, {"A": SECRET_VALUE})
    await bob.call("GET", f"/environments/{env_id}/secrets", status=200)
    made = await alice.call(
        "POST", f"/environments/{env_id}/tokens", {"name": "ci", "role": "viewer"}, status=201
    )
    await Api(server, made["token"]).call("GET", f"/environments/{env_id}/secrets", status=200)


async def test_filters_narrow_by_who_what_and_when(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    await _bob_and_a_token_act(server, alice, tree["prod"]["id"])
    scope = f"organization_id={tree['org']['id']}"
    everything = await _filtered(alice, scope)
    ids = [e["id"] for e in everything]

    bobs = await _filtered(alice, scope, actor="bob")
    assert [e["action"] for e in bobs] == ["secret.read", "secret.commit"]
    assert {e["actor_label"] for e in bobs} == {"bob"}
    robot = await _filtered(alice, scope, actor="ci")
    assert [(e["actor_type"], e["action"]) for e in robot] == [("service_token", "secret.read")]
    assert await _filtered(alice, scope, actor="nobody") == []

    under = await _filtered(alice, scope, action="secret.")
    assert [e["id"] for e in under] == [e["id"] for e in everything if e["action"][:7] == "secret."]
    assert [e["action"] for e in under] == ["secret.read", "secret.read", "secret.commit"]
    assert [e["action"] for e in await _filtered(alice, scope, action="member.grant")] == [
        "member.grant"
    ]
    assert await _filtered(alice, scope, action="secret") == []  # a start ends in a dot
    both = await _filtered(alice, scope, actor="bob", action="secret.read")
    assert [e["id"] for e in both] == [bobs[0]["id"]]

    # A time splits the listing: at or after it, and before it (to the microsecond).
    middle = everything[len(everything) // 2]["occurred_at"]
    later = await _filtered(alice, scope, since=middle)
    earlier = await _filtered(alice, scope, before=middle)
    assert [e["id"] for e in later + earlier] == ids
    assert later[-1]["occurred_at"] == middle
    oldest = everything[-1]["occurred_at"]
    window = await _filtered(alice, scope, since=oldest, before=middle, action="environment.")
    assert [e["action"] for e in window] == ["environment.create", "environment.create"]
    # A time without a zone is UTC; one with a zone counts as the same instant in UTC.
    moment = datetime.fromisoformat(middle)
    naive = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert await _filtered(alice, scope, since=naive) == later
    assert await _filtered(alice, scope, since=shifted) == later


async def test_a_login_finds_its_users_events_under_an_earlier_login(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    await _bob_and_a_token_act(server, alice, tree["prod"]["id"])
    # Bob's identity provider renamed him: his events still say bob.
    await _tamper(server, update(User).where(User.login == "bob").values(login="robert"))
    scope = f"environment_id={tree['prod']['id']}"
    by_login = await _filtered(alice, scope, actor="robert")
    assert [e["action"] for e in by_login] == ["secret.read", "secret.commit"]
    assert {e["actor_label"] for e in by_login} == {"bob"}
    assert await _filtered(alice, scope, actor="bob") == by_login


async def test_pages_of_a_filtered_listing_neither_overlap_nor_skip(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    prod = tree["prod"]["id"]
    for i in range(3):
        await _commit(alice, prod, {f"K{i}": "v"})
        await alice.call("GET", f"/environments/{prod}/secrets", status=200)
    scope = f"organization_id={tree['org']['id']}"
    wanted = [e["id"] for e in await _filtered(alice, scope, action="secret.commit")]
    assert len(wanted) == 3
    seen: list[int] = []
    cursor = ""
    while True:
        page = await _events(alice, f"{scope}&action=secret.commit&limit=2{cursor}")
        assert {e["action"] for e in page["items"]} == {"secret.commit"}
        seen += [e["id"] for e in page["items"]]
        if page["next"] is None:
            break
        cursor = f"&cursor={page['next']}"
    assert seen == wanted


# A bad filter and the words its refusal says (the URL's NUL is refused before any field).
BAD_FILTERS = {
    "action=Secret.read": "action: must be an action such as secret.read",
    "action=secret..read": "action: must be an action",
    "action=.secret": "action: must be an action",
    "action=secret.*": "action: must be an action",
    f"action=a{'.b' * 32}": "action: must be at most 64 characters",
    "actor=a%01b": "actor: must not contain control characters",
    "actor=": "actor: must not be empty",
    "action=": "action: must be an action",
    "actor=a%00b": "the URL holds a NUL character",
    f"actor={'x' * 256}": "actor: must be at most 255 characters",
    "since=yesterday": "since: must be a date and time",
    "before=2024-13-01": "before: must be a date and time",
    "since=0001-01-01T00:00:00%2B01:00": "since: is out of the range of dates",
    "before=9999-12-31T23:59:59-01:00": "before: is out of the range of dates",
    "since=2024-05-02&before=2024-05-01": "before: must be later than since",
    "since=2024-05-01T10:00&before=2024-05-01T10:00": "before: must be later than since",
}


async def test_bad_filters_are_422_in_words(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    for query, words in BAD_FILTERS.items():
        body = await _events(alice, f"organization_id={tree['org']['id']}&{query}", status=422)
        assert body["error_code"] == "validation_failed"
        assert words in body["error"], (query, body["error"])


async def test_the_gate_answers_before_the_filters_are_read(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    carol = await user(server, "carol")
    org = tree["org"]["id"]
    await alice.call("POST", f"/organizations/{org}/members", {"user": "carol", "role": "viewer"})
    body = await _events(carol, f"organization_id={org}&action=BAD&since=never", status=403)
    assert body["error_code"] == "forbidden"


async def test_service_tokens_cannot_read_the_audit_trail(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    prod = tree["prod"]["id"]
    made = await alice.call(
        "POST", f"/environments/{prod}/tokens", {"name": "ci", "role": "editor"}, status=201
    )
    robot = Api(server, made["token"])
    await _events(robot, f"environment_id={prod}", status=403)
    await _events(robot, f"organization_id={tree['org']['id']}", status=404)
    # The token's own events are in its environment's trail.
    await robot.call("GET", f"/environments/{prod}/secrets", status=200)
    events = (await _events(alice, f"environment_id={prod}"))["items"]
    assert events[0]["actor_type"] == "service_token" and events[0]["actor_label"] == "ci"
    created = next(e for e in events if e["action"] == "token.create")
    assert created["resource_type"] == "service_token"
    assert made["token"] not in str(events)


async def test_deleted_resources_keep_their_place(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, group = tree["dev"]["id"], tree["group"]["id"]
    await alice.call("DELETE", f"/environments/{dev}?cascade=true", status=200)
    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": tree["org"]["id"], "name": "t"}, status=201
    )
    await alice.call("DELETE", f"/user-groups/{team['id']}", status=200)
    events = (await _events(alice, f"secret_group_id={group}"))["items"]
    deleted = next(e for e in events if e["action"] == "environment.delete")
    assert (deleted["environment_id"], deleted["secret_group_id"]) == (dev, group)
    org_events = (await _events(alice, f"organization_id={tree['org']['id']}"))["items"]
    assert {"user_group.create", "user_group.delete"} <= {e["action"] for e in org_events}
    assert (await _verify(alice, tree["org"]["id"]))["intact"] is True


@asynccontextmanager
async def _generated_keys_instance(
    data_dir: Path, database_url: str | None
) -> AsyncIterator[InProcessServer]:
    """An app reading its keys from the data directory, as `kavach server start` does."""
    app = create_app(make_settings(data_dir, database_url))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://127.0.0.1",
        )
        async with client:
            server = InProcessServer(app=app, client=client)
            await truncate_all(server.runtime)
            yield server


async def test_local_verify_checks_every_chain(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url)
    monkeypatch.setenv("KAVACH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAVACH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("COLUMNS", "250")
    if database_url:
        monkeypatch.setenv("KAVACH_DATABASE_URL", database_url)
    async with _generated_keys_instance(data_dir, database_url) as server:
        alice = await user(server, "alice")
        first = await _tree(alice, "first")
        second = await _tree(alice, "second")
        reports = await asyncio.to_thread(verify_all, settings)
        assert [r.chain for r in reports] == [
            SERVER_CHAIN,
            *sorted((first["org"]["id"], second["org"]["id"])),
        ]
        assert all(r.intact for r in reports) and all(r.events > 0 for r in reports)

        login = (await _chain_rows(server, SERVER_CHAIN))[0]
        await _tamper(
            server, update(AuditEvent).where(AuditEvent.id == login.id).values(actor_label="x")
        )
        reports = await asyncio.to_thread(verify_all, settings)
        broken = {r.chain: r.broken for r in reports if r.broken is not None}
        assert list(broken) == [SERVER_CHAIN]
        assert broken[SERVER_CHAIN] is not None
        assert broken[SERVER_CHAIN].event_id == login.id

        # The same from the command line, with the server's settings from the environment.
        result = await run_cli("audit", "verify", "--local")
        assert result.exit_code == 4
        assert (
            f"the audit trail of chain server is broken: event #1 (id {login.id}) was changed"
        ) in result.stderr
        rows = [line.split("\t") for line in result.stdout.splitlines()[1:]]
        assert {row[0]: (row[1], row[4]) for row in rows} == {
            SERVER_CHAIN: ("0", "BROKEN"),
            first["org"]["id"]: ("4", "intact"),
            second["org"]["id"]: ("4", "intact"),
        }


async def test_local_verify_names_an_event_added_outside_the_chain(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KAVACH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAVACH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("COLUMNS", "250")
    if database_url:
        monkeypatch.setenv("KAVACH_DATABASE_URL", database_url)
    async with _generated_keys_instance(data_dir, database_url) as server:
        alice = await user(server, "alice")
        tree = await _tree(alice)
        # A login nobody made, shaped like one from before chaining, and an organization's.
        await _forge(server, id=0, action="auth.login")
        forged = await _forge(server, id=-1, organization_id=uuid.UUID(tree["org"]["id"]))
        result = await run_cli("audit", "verify", "--local")
    assert result.exit_code == 4, result.output
    assert "the audit trail of chain server is broken: event id 0 is not on the chain" in (
        result.stderr
    )
    assert f"chain {tree['org']['id']} is broken: event id {forged} is not on" in result.stderr


async def test_the_cli_lists_verifies_and_names_a_tampered_event(
    server: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kavach.cli.app import Runtime

    alice = await user(server, "alice")
    tree = await _tree(alice)
    await _commit(alice, tree["prod"]["id"], {"API_KEY": SECRET_VALUE})
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    for name, value in {
        "KAVACH_HOME": str(tmp_path / "home"),
        "KAVACH_SERVER": "http://127.0.0.1:8080",
        "KAVACH_TOKEN": token,
        "KAVACH_CREDENTIAL_STORE": "file",
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime(transport=LoopBridge(server, asyncio.get_running_loop()))

    async def kavach(*args: str) -> Any:
        return await run_cli(*args, runtime=runtime)

    intact = await kavach("audit", "verify", "--org", "acme")
    assert intact.exit_code == 0, intact.output
    assert "The audit trail of organization acme is intact: 5 events verified" in intact.stdout

    listed = await kavach("audit", "list", "--org", "acme", "--group", "web", "--env", "prod")
    assert listed.exit_code == 0, listed.output
    assert "secret.commit" in listed.stdout and "environment.create" in listed.stdout
    assert "secret_group.create" not in listed.stdout  # a group event, above prod
    assert SECRET_VALUE not in listed.stdout
    narrowed = await kavach("audit", "list", "--org", "acme", "--action", "secret.", "--json")
    assert narrowed.exit_code == 0, narrowed.output
    actions = {event["action"] for event in json.loads(narrowed.stdout)["items"]}
    assert actions == {"secret.commit"}
    nobody = await kavach("audit", "list", "--org", "acme", "--actor", "bob", "--json")
    assert json.loads(nobody.stdout)["items"] == []
    refused = await kavach("audit", "list", "--org", "acme", "--since", "not a time")
    assert refused.exit_code != 0 and "since" in refused.stderr

    victim = next(
        row for row in await _chain_rows(server, tree["org"]["id"]) if row.action == "secret.commit"
    )
    await _tamper(
        server,
        update(AuditEvent).where(AuditEvent.id == victim.id).values(outcome="failure"),
    )
    broken = await kavach("audit", "verify", "--org", "acme")
    assert broken.exit_code == 4
    assert (
        f"the audit trail of organization acme is broken: event #{victim.chain_seq} "
        f"(id {victim.id}) was changed after it was recorded (modified)"
    ) in broken.stderr


@asynccontextmanager
async def _fresh_database(backend: str) -> AsyncIterator[str | None]:
    """Yield the URL of an empty database of the backend (None: SQLite in the data dir)."""
    if backend == "sqlite":
        yield None
        return
    name = f"kavach_audit_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_upgrading_places_earlier_events_in_their_scope(backend: str, tmp_path: Path) -> None:
    async with _fresh_database(backend) as url:
        settings = make_settings(tmp_path, url)
        engine = create_engine(settings)
        try:
            await _upgrade(engine, "0004")
            org, group, env, gone = (uuid.uuid4() for _ in range(4))
            ids = {"o": org, "g": group, "e": env}
            old = [("organization", org), ("environment", env), ("environment", gone)]
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO organizations (id, name, created_at) VALUES (:o, 'acme', :t)"
                    ).bindparams(bindparam("o", type_=Uuid())),
                    {"o": org, "t": utcnow()},
                )
                await conn.execute(
                    text(
                        "INSERT INTO secret_groups (id, organization_id, name, created_at) "
                        "VALUES (:g, :o, 'web', :t)"
                    ).bindparams(bindparam("o", type_=Uuid()), bindparam("g", type_=Uuid())),
                    {**ids, "t": utcnow()},
                )
                await conn.execute(
                    text(
                        "INSERT INTO environments (id, secret_group_id, name, created_at) "
                        "VALUES (:e, :g, 'prod', :t)"
                    ).bindparams(bindparam("e", type_=Uuid()), bindparam("g", type_=Uuid())),
                    {**ids, "t": utcnow()},
                )
                for kind, rid in old:
                    await conn.execute(
                        text(
                            "INSERT INTO audit_events (occurred_at, actor_type, action, "
                            "resource_type, resource_id, outcome, details) "
                            "VALUES (:t, 'user', 'x', :k, :r, 'success', '{}')"
                        ),
                        {"t": utcnow(), "k": kind, "r": str(rid)},
                    )
            await _upgrade(engine, "head")
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(
                            AuditEvent.organization_id,
                            AuditEvent.secret_group_id,
                            AuditEvent.environment_id,
                            AuditEvent.chain,
                        ).order_by(AuditEvent.id)
                    )
                ).all()
            assert [tuple(row) for row in rows] == [
                (org, None, None, None),
                (org, group, env, None),
                (None, None, None, None),  # its environment no longer exists
            ]
        finally:
            await engine.dispose()


# --- headers ------------------------------------------------------------------------------


async def test_security_headers_on_api_and_other_responses(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    responses = {
        "info": await server.client.get("/api/v1/info"),
        "denied": await server.client.get("/api/v1/organizations/"),
        "listed": await server.client.get("/api/v1/organizations/", headers=alice.headers),
        "health": await server.client.get("/healthz"),
        "unknown": await server.client.get("/nowhere"),
    }
    for name, response in responses.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert "default-src 'none'" in headers["content-security-policy"], name
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
        assert "strict-transport-security" not in headers, name  # plain HTTP
        assert not any(h.startswith("access-control-") for h in headers), name
    for name in ("info", "denied", "listed"):
        assert responses[name].headers["cache-control"] == "no-store"

    device = await server.client.get("/device")
    assert "style-src 'unsafe-inline'" in device.headers["content-security-policy"]
    assert device.headers.get_list("content-security-policy") == [
        device.headers["content-security-policy"]
    ]
    docs = await server.client.get("/api/v1/docs")
    assert "script-src 'self';" in docs.headers["content-security-policy"]


async def test_hsts_only_over_https(server: InProcessServer) -> None:
    secure = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app, client=("127.0.0.1", 1)),
        base_url="https://kavach.example",
    )
    async with secure:
        response = await secure.get("/api/v1/info")
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    plain = await server.client.get("/api/v1/info")
    assert "strict-transport-security" not in plain.headers


async def test_an_unhandled_error_still_carries_the_headers(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, None), keys=random_keys())

    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/explode", explode)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/v1/explode")
    assert response.status_code == 500
    assert response.json()["error_code"] == "internal_error"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "https://console.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_no_cors_headers_unless_configured(server: InProcessServer) -> None:
    simple = await server.client.get("/api/v1/info", headers={"Origin": ORIGIN})
    preflight = await server.client.options("/api/v1/organizations/", headers=PREFLIGHT)
    for response in (simple, preflight):
        assert not any(name.startswith("access-control-") for name in response.headers)
    assert preflight.status_code in (404, 405)


async def test_configured_origins_get_cors_headers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None).model_copy(
        update={"cors_origins": f"{ORIGIN}/, http://localhost:3000"}
    )
    async with _app(settings) as client:
        allowed = await client.get("/api/v1/info", headers={"Origin": ORIGIN})
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        assert allowed.headers["x-content-type-options"] == "nosniff"

        other = await client.get("/api/v1/info", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers

        preflight = await client.options("/api/v1/organizations/", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        refused = await client.options(
            "/api/v1/organizations/", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("value", ["console.example.com", "https://x.example/path", "ftp://x"])
def test_bad_cors_origins_refuse_to_start(tmp_path: Path, value: str) -> None:
    settings = make_settings(tmp_path, None).model_copy(update={"cors_origins": value})
    with pytest.raises(ConfigurationError, match="KAVACH_CORS_ORIGINS"):
        create_app(settings, keys=random_keys())


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVACH_CORS_ORIGINS", ORIGIN)
    assert Settings().cors_origins == ORIGIN
