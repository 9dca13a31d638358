"""Invites: roles granted to a login or e-mail address before its first sign-in."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kavach.server.audit.models import AuditEvent
from kavach.server.rbac.models import PendingGrant
from tests.conftest import InProcessServer
from tests.integration.cli_bridge import run_cli_as
from tests.integration.test_resources import Api, user


async def _tree(alice: Api) -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return {"org": org, "group": group, "env": env}


async def _events(server: InProcessServer, action: str) -> list[AuditEvent]:
    async with server.runtime.sessionmaker() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(await session.scalars(query))


async def test_an_invite_waits_for_the_first_sign_in_and_becomes_a_role(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    me = await alice.call("GET", "/auth/me", status=200)
    env = (await _tree(alice))["env"]
    members = f"/environments/{env['id']}/members"

    invited = await alice.call("POST", members, {"user": "Dave", "role": "editor"}, status=202)
    assert {k: v for k, v in invited.items() if k not in ("id", "created_at")} == {
        "pending": True,
        "login": "dave",
        "email": None,
        "role": "editor",
        "resource_type": "environment",
        "resource_id": env["id"],
        "resource_name": "prod",
        "granted_by": {"id": me["id"], "login": "alice"},
    }
    assert await alice.call("GET", f"{members}/pending", status=200) == {
        "items": [invited],
        "next": None,
    }
    # Nothing is granted yet: the members are the owner's bindings alone.
    held = (await alice.call("GET", members, status=200))["items"]
    assert {b["user"]["login"] for b in held} == {"alice"}
    [event] = await _events(server, "member.invite")
    assert (event.actor_label, event.environment_id) == ("alice", uuid.UUID(env["id"]))
    assert event.details == {"user": "dave", "role": "editor"}

    # Dave signs in for the first time, through the real local login path: the role is his.
    dave = await user(server, "dave")
    found = await dave.call(
        "GET", "/organizations/by-name/acme/secret-groups/web/environments/prod", status=200
    )
    assert found["role"] == "editor"
    commit = {"message": "by dave", "set": {"K": "v"}}
    await dave.call("POST", f"/environments/{env['id']}/secrets/versions", commit, status=201)
    assert await alice.call("GET", f"{members}/pending") == {"items": [], "next": None}
    held = (await alice.call("GET", members, status=200))["items"]
    mine = [(b["user"]["login"], b["role"], b["inherited"]) for b in held if b["user"]]
    assert ("dave", "editor", False) in mine
    [accepted] = await _events(server, "member.invite.accept")
    assert (accepted.actor_label, accepted.environment_id) == ("dave", uuid.UUID(env["id"]))
    assert accepted.details == {"user": "dave", "role": "editor", "granted_by": me["id"]}
    # His next sign-in finds nothing more to take.
    await user(server, "dave")
    assert len(await _events(server, "member.invite.accept")) == 1


async def test_invites_follow_the_rules_of_grants(server: InProcessServer) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    carol, outsider = await user(server, "carol"), await user(server, "outsider")
    tree = await _tree(alice)
    org_members = f"/organizations/{tree['org']['id']}/members"
    env_members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", org_members, {"user": "bob", "role": "admin"}, status=200)
    await alice.call("POST", env_members, {"user": "carol", "role": "viewer"}, status=200)
    newbie = {"user": "newbie"}

    # An admin invites up to admin; only an owner invites an owner, or changes an owner's invite.
    refused = await bob.call("POST", org_members, {**newbie, "role": "owner"}, status=403)
    assert refused["error_code"] == "forbidden"
    await bob.call("POST", org_members, {**newbie, "role": "admin"}, status=202)
    raised = await alice.call("POST", org_members, {**newbie, "role": "owner"}, status=202)
    assert raised["role"] == "owner"
    await bob.call("POST", org_members, {**newbie, "role": "viewer"}, status=403)
    await bob.call("DELETE", f"{org_members}/pending", newbie, status=403)
    # Who may not see the members may not see the invites; who does not see it, not even that.
    await carol.call("GET", f"{org_members}/pending", status=403)
    await carol.call("POST", env_members, {**newbie, "role": "viewer"}, status=403)
    await outsider.call("GET", f"{org_members}/pending", status=404)
    await outsider.call("POST", org_members, {**newbie, "role": "viewer"}, status=404)
    listed = await bob.call("GET", f"{org_members}/pending", status=200)
    assert [(i["login"], i["role"]) for i in listed["items"]] == [("newbie", "owner")]

    # Revoked only as it is: a role that does not match, or nobody invited, is a 404.
    await alice.call("DELETE", f"{org_members}/pending", {**newbie, "role": "viewer"}, status=404)
    await alice.call("DELETE", f"{org_members}/pending", {"user": "NEWBIE"}, status=200)
    gone = await alice.call("DELETE", f"{org_members}/pending", newbie, status=404)
    assert gone["error_code"] == "not_found"
    [revoked] = await _events(server, "member.invite.revoke")
    assert revoked.details == {"user": "newbie", "role": "owner"}
    await user(server, "newbie")
    assert (await _events(server, "member.invite.accept")) == []

    # What no one can sign in as, and what is not an address, are refused; user groups are
    # not invited, and revoking a binding still needs someone who holds it.
    for body in (
        {"user": "not a login", "role": "viewer"},
        {"user": "x" * 64, "role": "viewer"},
        {"user": "newbie\n", "role": "viewer"},
        {"email": "not-an-address", "role": "viewer"},
        {"email": "a@b.c", "user": "dave", "role": "viewer"},
    ):
        bad = await alice.call("POST", org_members, body, status=422)
        assert bad["error_code"] == "validation_failed", body
    await alice.call("POST", org_members, {"user_group": "ghosts", "role": "viewer"}, status=404)
    await alice.call("DELETE", org_members, {"user": "ghost"}, status=404)


async def test_a_login_that_differs_in_case_is_the_user_not_an_invite(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    await user(server, "bob")
    members = f"/organizations/{(await _tree(alice))['org']['id']}/members"
    granted = await alice.call("POST", members, {"user": "BOB", "role": "viewer"}, status=200)
    assert (granted["user"]["login"], granted["role"]) == ("bob", "viewer")
    assert await alice.call("GET", f"{members}/pending") == {"items": [], "next": None}


async def test_several_invites_give_the_strongest_role_and_never_lower_one(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    group_members = f"/secret-groups/{tree['group']['id']}/members"
    env_members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", env_members, {"user": "erin", "role": "admin"}, status=202)
    await alice.call("POST", group_members, {"user": "erin", "role": "viewer"}, status=202)
    by_mail = await alice.call(
        "POST", env_members, {"email": "Erin@Example.COM", "role": "viewer"}, status=202
    )
    assert (by_mail["login"], by_mail["email"]) == (None, "erin@example.com")
    pending = (await alice.call("GET", f"{env_members}/pending"))["items"]
    assert [(i["login"], i["email"]) for i in pending] == [
        ("erin", None),
        (None, "erin@example.com"),
    ]

    # Local sign-ins vouch for no address: the e-mail invite stays, the login's apply.
    erin = await user(server, "erin")
    env = await erin.call("GET", f"/environments/{tree['env']['id']}", status=200)
    group = await erin.call("GET", f"/secret-groups/{tree['group']['id']}", status=200)
    assert (env["role"], group["role"]) == ("admin", "viewer")
    left = (await alice.call("GET", f"{env_members}/pending"))["items"]
    assert [i["email"] for i in left] == ["erin@example.com"]

    # An invite for someone who holds more already leaves their role as it is.
    await alice.call("POST", group_members, {"user": "frank", "role": "admin"}, status=202)
    await user(server, "frank")
    async with server.runtime.sessionmaker() as session, session.begin():
        session.add(
            PendingGrant(
                organization_id=uuid.UUID(tree["org"]["id"]),
                resource_type="secret_group",
                resource_id=uuid.UUID(tree["group"]["id"]),
                invitee_type="login",
                invitee="frank",
                role="viewer",
            )
        )
    frank = await user(server, "frank")
    group = await frank.call("GET", f"/secret-groups/{tree['group']['id']}", status=200)
    assert group["role"] == "admin"
    async with server.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PendingGrant)) == 1


async def test_invites_go_with_the_resource_they_were_for(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    for path in (f"/environments/{tree['env']['id']}", f"/secret-groups/{tree['group']['id']}"):
        await alice.call("POST", f"{path}/members", {"user": "gina", "role": "viewer"}, 202)
    await alice.call(
        "POST", f"/organizations/{tree['org']['id']}/members", {"user": "gina", "role": "viewer"}
    )
    await alice.call("DELETE", f"/secret-groups/{tree['group']['id']}?cascade=true", status=200)
    async with server.runtime.sessionmaker() as session:
        left = list(await session.scalars(select(PendingGrant.resource_type)))
    assert left == ["organization"]
    await alice.call("DELETE", f"/organizations/{tree['org']['id']}?cascade=true", status=200)
    async with server.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PendingGrant)) == 0


async def test_the_cli_invites_lists_and_withdraws_and_the_invitee_gets_the_role(
    server: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    where = ("--org", "acme", "--group", "web", "--env", "prod")

    async def kavach(*args: str) -> Any:
        result, _sent = await run_cli_as(alice, tmp_path / "home", monkeypatch, *args)
        return result

    granted = await kavach("env", "grant", "-r", "editor", "-u", "hana", *where)
    assert granted.exit_code == 0, granted.output
    assert granted.stdout == (
        "Invited user hana as editor on environment acme/web/prod: pending until they first "
        "sign in (`list-bindings --pending` shows it, `revoke --pending` withdraws it).\n"
    )
    mailed = await kavach("env", "grant", "-r", "viewer", "--email", "ivy@example.com", *where)
    assert mailed.exit_code == 0, mailed.output
    listed = await kavach("env", "list-bindings", "--pending", "--json", *where)
    pending = json.loads(listed.stdout)
    api_page = await alice.call("GET", f"/environments/{tree['env']['id']}/members/pending")
    assert pending == api_page
    assert [(i["login"], i["email"], i["role"]) for i in pending["items"]] == [
        ("hana", None, "editor"),
        (None, "ivy@example.com", "viewer"),
    ]
    table = await kavach("env", "list-bindings", "--pending", *where)
    assert "hana" in table.stdout and "ivy@example.com" in table.stdout, table.output

    withdrawn = await kavach("env", "revoke", "--email", "ivy@example.com", "--yes", *where)
    assert withdrawn.stdout == (
        "Withdrew the invite of ivy@example.com on environment acme/web/prod.\n"
    )
    missing = await kavach("env", "revoke", "--pending", "-u", "ivy", "--yes", *where)
    assert missing.exit_code == 4
    assert "(not_found)" in missing.stderr

    hana = await user(server, "hana")
    assert (await hana.call("GET", f"/environments/{tree['env']['id']}"))["role"] == "editor"
    empty = await kavach("env", "list-bindings", "--pending", *where)
    assert empty.stdout == "" and "No invites are pending on environment acme/web/prod." in (
        empty.stderr
    )
    roles = await kavach("env", "list-bindings", "--json", *where)
    held = [(b["user"]["login"], b["role"]) for b in json.loads(roles.stdout)["items"] if b["user"]]
    assert ("hana", "editor") in held
