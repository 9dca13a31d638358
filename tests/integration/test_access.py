"""Access control: inheritance, user groups, grant rules, last owner, service tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import ServiceToken
from kavach.server.db.base import utcnow
from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user


async def _tree(alice: Api) -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    dev = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "dev"}, status=201
    )
    prod = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return {"org": org, "group": group, "dev": dev, "prod": prod}


async def test_the_access_story(server: InProcessServer) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    tree = await _tree(alice)
    org, group, dev, prod = tree["org"], tree["group"], tree["dev"], tree["prod"]

    assert (await bob.call("GET", "/organizations/", status=200))["items"] == []
    await bob.call("GET", f"/environments/{dev['id']}", status=404)

    await alice.call(
        "POST",
        f"/secret-groups/{group['id']}/members",
        {"user": "bob", "role": "viewer"},
        status=200,
    )
    for env in (dev, prod):
        seen = await bob.call("GET", f"/environments/{env['id']}", status=200)
        assert seen["role"] == "viewer"
    # The organization is visible (the way down) but B holds no role on it.
    listed = (await bob.call("GET", "/organizations/", status=200))["items"]
    assert [(o["name"], o["role"]) for o in listed] == [("acme", None)]
    names = (await bob.call("GET", f"/secret-groups/{group['id']}/environments"))["items"]
    assert [e["name"] for e in names] == ["dev", "prod"]
    refused = await bob.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "qa"}, status=403
    )
    assert refused["error_code"] == "forbidden"
    assert "env.create" in refused["error"]
    await bob.call("POST", f"/organizations/{org['id']}/secret-groups", {"name": "x"}, status=403)

    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": org["id"], "name": "backend"}, status=201
    )
    await alice.call("POST", f"/user-groups/{team['id']}/members", {"user": "bob"}, status=201)
    await alice.call(
        "POST",
        f"/environments/{dev['id']}/members",
        {"user_group": "backend", "role": "editor"},
        status=200,
    )
    assert (await bob.call("GET", f"/environments/{dev['id']}", status=200))["role"] == "editor"
    assert (await bob.call("GET", f"/environments/{prod['id']}", status=200))["role"] == "viewer"

    members = (await alice.call("GET", f"/environments/{dev['id']}/members"))["items"]
    held = {
        (
            m["user"]["login"] if m["user"] else m["user_group"]["name"],
            m["resource_type"],
            m["inherited"],
        )
        for m in members
    }
    assert ("backend", "environment", False) in held
    assert ("bob", "secret_group", True) in held

    await alice.call("DELETE", f"/secret-groups/{group['id']}/members", {"user": "bob"}, status=200)
    await alice.call("DELETE", f"/user-groups/{team['id']}/members", {"user": "bob"}, status=200)
    await bob.call("GET", f"/environments/{dev['id']}", status=404)
    await bob.call("GET", f"/environments/{prod['id']}", status=404)


async def test_admins_grant_up_to_admin_and_only_owners_grant_owner(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    await user(server, "carol")
    org = (await _tree(alice))["org"]
    members = f"/organizations/{org['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "admin"}, status=200)
    await bob.call("POST", members, {"user": "carol", "role": "admin"}, status=200)
    refused = await bob.call("POST", members, {"user": "carol", "role": "owner"}, status=403)
    assert "owner" in refused["error"]
    await bob.call("DELETE", members, {"user": "alice"}, status=403)
    await bob.call("POST", members, {"user": "alice", "role": "viewer"}, status=403)
    # A login nobody has signed in with yet is invited: the role waits for their sign-in.
    invited = await bob.call("POST", members, {"user": "nobody", "role": "viewer"}, status=202)
    assert (invited["pending"], invited["login"], invited["role"]) == (True, "nobody", "viewer")
    unknown = await bob.call(
        "POST", members, {"user_group": "ghosts", "role": "viewer"}, status=404
    )
    assert "ghosts" in unknown["error"]
    both = await bob.call(
        "POST", members, {"user": "carol", "user_group": "x", "role": "viewer"}, status=422
    )
    assert both["error_code"] == "validation_failed"


async def test_the_last_owner_cannot_leave(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    await user(server, "bob")
    org = (await _tree(alice))["org"]
    members = f"/organizations/{org['id']}/members"
    last = await alice.call("DELETE", members, {"user": "alice"}, status=409)
    assert last["error_code"] == "last_owner"
    demoted = await alice.call("POST", members, {"user": "alice", "role": "admin"}, status=409)
    assert demoted["error_code"] == "last_owner"
    await alice.call("POST", members, {"user": "bob", "role": "owner"}, status=200)
    await alice.call("DELETE", members, {"user": "alice"}, status=200)
    await alice.call("GET", f"/organizations/{org['id']}", status=200)  # group/env owner still


async def test_service_token_reads_only_its_environment(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, prod = tree["dev"], tree["prod"]
    created = await alice.call(
        "POST",
        f"/environments/{dev['id']}/tokens",
        {"name": "ci", "role": "viewer"},
        status=201,
    )
    secret = created["token"]
    assert secret.startswith("kvt_")
    listed = (await alice.call("GET", f"/environments/{dev['id']}/tokens"))["items"]
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]
    async with server.runtime.sessionmaker() as session:
        stored = await session.scalar(select(ServiceToken))
        events = (await session.scalars(select(AuditEvent))).all()
    assert stored is not None and secret not in stored.token_hash
    assert all(secret not in str(e.details) for e in events)

    robot = Api(server, secret)
    assert (await robot.call("GET", f"/environments/{dev['id']}", status=200))["role"] == "viewer"
    for path in (
        f"/environments/{prod['id']}",
        f"/secret-groups/{tree['group']['id']}",
        f"/organizations/{tree['org']['id']}",
    ):
        await robot.call("GET", path, status=404)
    await robot.call(
        "POST", f"/environments/{dev['id']}/tokens", {"name": "more", "role": "viewer"}, status=403
    )
    await robot.call(
        "POST",
        f"/environments/{dev['id']}/members",
        {"user": "alice", "role": "viewer"},
        status=403,
    )
    await robot.call("PATCH", f"/environments/{dev['id']}", {"description": "x"}, status=403)
    await robot.call("POST", "/organizations/", {"name": "evil"}, status=403)
    await robot.call("GET", "/auth/me", status=403)
    who = await robot.call("GET", "/auth/whoami", status=200)
    assert (who["type"], who["token"]["environment_id"], who["token"]["role"]) == (
        "service_token",
        dev["id"],
        "viewer",
    )
    assert (await alice.call("GET", "/auth/whoami", status=200))["user"]["login"] == "alice"

    await alice.call("DELETE", f"/environments/{dev['id']}/tokens/{created['id']}", status=200)
    revoked = await robot.call("GET", f"/environments/{dev['id']}", status=401)
    assert revoked["error_code"] == "invalid_token"


async def test_expired_service_token_is_refused(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    dev = (await _tree(alice))["dev"]
    created = await alice.call(
        "POST",
        f"/environments/{dev['id']}/tokens",
        {"name": "ci", "role": "editor", "expires_in": 60},
        status=201,
    )
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(ServiceToken).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await Api(server, created["token"]).call(
        "GET", f"/environments/{dev['id']}", status=401
    )
    assert expired["error_code"] == "invalid_token"
    bad = await alice.call(
        "POST", f"/environments/{dev['id']}/tokens", {"name": "x", "role": "admin"}, status=422
    )
    assert bad["error_code"] == "validation_failed"
