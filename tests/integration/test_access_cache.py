"""The access cache: answers served from it end the moment access changes on any instance.

Two app instances share one database; reads go through `first` (whose cache is warm),
changes through `second`, and the very next read through `first` must see the change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from kavach.server.app import create_app
from kavach.server.auth.models import LoginSession, ServiceToken
from kavach.server.db.base import utcnow
from kavach.server.iam.models import User
from kavach.server.rbac.models import AccessEpoch
from tests.conftest import InProcessServer
from tests.integration.helpers import login
from tests.integration.test_resources import Api, user


@pytest.fixture
async def second(server: InProcessServer) -> AsyncIterator[InProcessServer]:
    """Another instance of the same server: same settings, keys and database."""
    app = create_app(server.runtime.settings, keys=server.runtime.keys)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")
        async with client:
            yield InProcessServer(app=app, client=client)


def on(server: InProcessServer, api: Api) -> Api:
    """The same caller, talking to another instance."""
    other = Api(server, "")
    other.headers = api.headers
    return other


async def _setup(alice: Api) -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "pay"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    await alice.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        {"message": "first", "set": {"DB_PASSWORD": "hunter2"}},
        status=201,
    )
    return {"org": org, "group": group, "env": env, "secrets": f"/environments/{env['id']}/secrets"}


async def _bob_with_role(
    server: InProcessServer, on_level: str, role: str
) -> tuple[Api, Api, dict[str, Any], str]:
    """Alice's tree, and Bob holding `role` on its group or environment; returns the members URL."""
    alice = await user(server, "alice")
    tree = await _setup(alice)
    bob = await user(server, "bob")
    kind = {"group": "secret-groups", "env": "environments"}[on_level]
    members = f"/{kind}/{tree[on_level]['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": role}, status=200)
    return alice, bob, tree, members


async def _warm(api: Api, path: str, times: int = 3) -> None:
    for _ in range(times):
        body = await api.call("GET", path, status=200)
        assert body["secrets"] == {"DB_PASSWORD": "hunter2"}


async def test_revoked_role_binding_ends_cached_reads(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice, bob, tree, members = await _bob_with_role(server, "group", "viewer")
    await _warm(bob, tree["secrets"])
    await on(second, alice).call("DELETE", members, {"user": "bob"}, status=200)
    await bob.call("GET", tree["secrets"], status=404)


async def test_downgraded_role_ends_cached_writes(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice, bob, tree, members = await _bob_with_role(server, "env", "editor")
    commit = {"message": "bob", "set": {"A": "1"}}
    await bob.call("POST", f"{tree['secrets']}/versions", commit, status=201)
    await on(second, alice).call("POST", members, {"user": "bob", "role": "viewer"}, status=200)
    commit = {"message": "bob again", "set": {"A": "2"}}
    refused = await bob.call("POST", f"{tree['secrets']}/versions", commit, status=403)
    assert refused["error_code"] == "forbidden"


async def test_leaving_a_user_group_ends_cached_reads(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    bob = await user(server, "bob")
    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": tree["org"]["id"], "name": "ops"}, status=201
    )
    await alice.call("POST", f"/user-groups/{team['id']}/members", {"user": "bob"}, status=201)
    await alice.call(
        "POST",
        f"/environments/{tree['env']['id']}/members",
        {"user_group": "ops", "role": "viewer"},
        status=200,
    )
    await _warm(bob, tree["secrets"])
    await on(second, alice).call(
        "DELETE", f"/user-groups/{team['id']}/members", {"user": "bob"}, status=200
    )
    await bob.call("GET", tree["secrets"], status=404)


async def test_logout_elsewhere_ends_cached_session(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    await _warm(alice, tree["secrets"])
    out = await second.client.post("/api/v1/auth/logout", headers=alice.headers)
    assert out.status_code == 200
    ended = await alice.call("GET", tree["secrets"], status=401)
    assert ended["error_code"] == "invalid_token"


async def test_revoked_service_token_ends_cached_reads(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    tokens = f"/environments/{tree['env']['id']}/tokens"
    created = await alice.call("POST", tokens, {"name": "ci", "role": "viewer"}, status=201)
    robot = Api(server, created["token"])
    await _warm(robot, tree["secrets"])
    await on(second, alice).call("DELETE", f"{tokens}/{created['id']}", status=200)
    await robot.call("GET", tree["secrets"], status=401)


async def test_deleted_environment_is_gone_for_cached_callers(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    await _warm(alice, tree["secrets"])
    await on(second, alice).call(
        "DELETE", f"/environments/{tree['env']['id']}?cascade=true", status=200
    )
    await alice.call("GET", tree["secrets"], status=404)


async def test_without_the_epoch_row_nothing_is_cached(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice, bob, tree, members = await _bob_with_role(server, "env", "viewer")
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(AccessEpoch))
    try:
        await _warm(bob, tree["secrets"])
        # With no epoch to move, only an uncached check can notice this.
        await on(second, alice).call("DELETE", members, {"user": "bob"}, status=200)
        await bob.call("GET", tree["secrets"], status=404)
    finally:
        async with server.runtime.sessionmaker() as session, session.begin():
            session.add(AccessEpoch(id=1, value=1))


async def _epoch(server: InProcessServer) -> int:
    async with server.runtime.sessionmaker() as session:
        value = await session.scalar(select(AccessEpoch.value).where(AccessEpoch.id == 1))
    assert value is not None
    return int(value)


async def test_a_refresh_elsewhere_keeps_cached_access(
    server: InProcessServer, second: InProcessServer
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    bob = await login(server, "bob")
    await alice.call(
        "POST", f"/environments/{tree['env']['id']}/members", {"user": "bob", "role": "viewer"}
    )
    await _warm(alice, tree["secrets"])
    cache = server.runtime.access_cache
    stored, cached = await _epoch(server), cache.epoch
    assert cached is not None

    refreshed = await second.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert await _epoch(server) == stored
    # The first instance's next read needs no fresh check: its caches were kept.
    await _warm(alice, tree["secrets"], times=1)
    assert cache.epoch == cached
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    assert cache.principal(cached, token, utcnow()) is not None
    bob_api = Api(server, refreshed.json()["data"]["access_token"])
    await _warm(bob_api, tree["secrets"], times=1)


# Updates of a session or token, and whether each ends or narrows someone's access.
_UPDATES: dict[str, tuple[type[LoginSession | ServiceToken], str, str, bool]] = {
    "session revoked": (LoginSession, "revoked_at", "earlier", True),
    "session expiry earlier": (LoginSession, "expires_at", "earlier", True),
    "session expiry later": (LoginSession, "expires_at", "later", False),
    "session given to another user": (LoginSession, "user_id", "bob", True),
    "token revoked": (ServiceToken, "revoked_at", "earlier", True),
    "token expiry set": (ServiceToken, "expires_at", "earlier", True),
    "token expiry later": (ServiceToken, "expires_at", "later", False),
    "token role changed": (ServiceToken, "role", "editor", True),
    "token last use noted": (ServiceToken, "last_used_at", "earlier", False),
}


@pytest.mark.parametrize("change", list(_UPDATES))
async def test_the_epoch_moves_only_when_access_ends_or_narrows(
    server: InProcessServer, change: str
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    await user(server, "bob")
    tokens = f"/environments/{tree['env']['id']}/tokens"
    await alice.call("POST", tokens, {"name": "ci", "role": "viewer"}, status=201)
    model, column, to, narrows = _UPDATES[change]
    now = utcnow()
    async with server.runtime.sessionmaker() as session, session.begin():
        bob = await session.scalar(select(User.id).where(User.login == "bob"))
        start = None if change == "token expiry set" else now
        await session.execute(update(model).values(expires_at=start))
    values = {
        "earlier": now - timedelta(seconds=1),
        "later": now + timedelta(days=1),
        "bob": bob,
        "editor": "editor",
    }
    before = await _epoch(server)
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(update(model).values({column: values[to]}))
    assert (await _epoch(server) > before) is narrows
