"""The dashboard's access pages and user groups: who sees which controls, what a change does."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from tests.conftest import InProcessServer
from tests.integration.test_dashboard import person
from tests.integration.test_resources import Api


@pytest.fixture
async def tree(server: InProcessServer) -> dict[str, Any]:
    """Alice owns acme / payments / prod; bob has signed in (with no role yet)."""
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    bob_api, bob = await person(server, "bob")
    return {
        "alice": alice,
        "browser": browser,
        "bob_api": bob_api,
        "bob": bob,
        "org": org,
        "group": group,
        "env": env,
    }


async def _events(server: InProcessServer, action: str) -> list[AuditEvent]:
    async with server.runtime.sessionmaker() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(await session.scalars(query))


def _same_event(page: AuditEvent, api: AuditEvent) -> None:
    """Two events of one change, the one made from a page and the one made by the API."""
    fields = ("actor_type", "actor_id", "action", "resource_type", "resource_id", "outcome")
    assert [getattr(page, f) for f in fields] == [getattr(api, f) for f in fields]
    assert page.details == api.details
    assert (page.organization_id, page.secret_group_id, page.environment_id) == (
        api.organization_id,
        api.secret_group_id,
        api.environment_id,
    )


async def _members(api: Api, path: str) -> set[tuple[str, str]]:
    found = await api.call("GET", f"{path}/members", status=200)
    return {
        (row["user"]["login"] if row["user"] else row["user_group"]["name"], row["role"])
        for row in found["items"]
        if not row["inherited"]
    }


async def test_an_admin_grants_sees_it_and_revokes_as_the_api_does(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, org = tree["alice"], tree["browser"], tree["org"]
    base = f"/ui/organizations/{org['id']}/access"
    shown = await browser.get(base)
    assert shown.status_code == 200
    assert 'id="grant-who"' in shown.text and '<option value="owner"' in shown.text
    assert "this organization" in shown.text  # alice's own role, held here

    granted = await browser.post(f"{base}/grant", {"who": "bob", "role": "editor"})
    assert granted.status_code == 200, granted.text
    assert "bob now holds editor here." in granted.text
    assert 'aria-label="Revoke editor from bob"' in granted.text
    assert ("bob", "editor") in await _members(alice, f"/organizations/{org['id']}")
    assert "bob" in (await browser.get(base)).text

    revoked = await browser.post(f"{base}/revoke", {"user": "bob", "role": "editor"})
    assert revoked.status_code == 200, revoked.text
    assert "Revoked editor from bob." in revoked.text
    assert await _members(alice, f"/organizations/{org['id']}") == {("alice", "owner")}

    # The API's own grant and revoke write the same events as the page's.
    path = f"/organizations/{org['id']}/members"
    await alice.call("POST", path, {"user": "bob", "role": "editor"}, status=200)
    await alice.call("DELETE", path, {"user": "bob", "role": "editor"}, status=200)
    for action in ("member.grant", "member.revoke"):
        from_page, from_api = await _events(server, action)
        _same_event(from_page, from_api)
        assert from_page.details["user"] == "bob"


async def test_an_address_is_invited_and_the_invite_withdrawn(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, group = tree["alice"], tree["browser"], tree["group"]
    base = f"/ui/secret-groups/{group['id']}/access"
    invited = await browser.post(f"{base}/grant", {"who": "Erin@Example.com", "role": "viewer"})
    assert invited.status_code == 200, invited.text
    assert "Invited erin@example.com as viewer" in invited.text
    assert "Pending invites" in invited.text
    assert 'aria-label="Withdraw the invite of erin@example.com"' in invited.text
    pending = f"/secret-groups/{group['id']}/members/pending"
    listed = await alice.call("GET", pending, status=200)
    assert [(i["email"], i["role"]) for i in listed["items"]] == [("erin@example.com", "viewer")]

    withdrawn = await browser.post(
        f"{base}/withdraw", {"email": "erin@example.com", "role": "viewer"}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert "Withdrew the invite of erin@example.com." in withdrawn.text
    assert "Pending invites" not in withdrawn.text
    assert (await alice.call("GET", pending, status=200))["items"] == []

    # A login nobody has signed in with is invited too; the API's invite writes the same.
    by_login = await browser.post(f"{base}/grant", {"who": "frank", "role": "editor"})
    assert "Invited frank as editor" in by_login.text
    await alice.call("DELETE", pending, {"user": "frank"}, status=200)
    await alice.call(
        "POST",
        f"/secret-groups/{group['id']}/members",
        {"email": "erin@example.com", "role": "viewer"},
        status=202,
    )
    await alice.call("DELETE", pending, {"email": "erin@example.com"}, status=200)
    page_invite, _frank, api_invite = await _events(server, "member.invite")
    _same_event(page_invite, api_invite)
    page_withdrawal, _frank_gone, api_withdrawal = await _events(server, "member.invite.revoke")
    _same_event(page_withdrawal, api_withdrawal)
    assert page_withdrawal.details == {"email": "erin@example.com", "role": "viewer"}


async def test_refusals_are_said_in_words_and_change_nothing(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, org = tree["alice"], tree["browser"], tree["org"]
    path = f"/organizations/{org['id']}"
    await alice.call("POST", f"{path}/members", {"user": "bob", "role": "admin"}, status=200)
    base = f"/ui{path}/access"

    # An admin is offered the roles up to admin, and refused owner if asked anyway.
    shown = await tree["bob"].get(base)
    assert 'id="grant-who"' in shown.text
    assert '<option value="owner"' not in shown.text
    assert 'aria-label="Revoke owner from alice"' not in shown.text
    above = await tree["bob"].post(f"{base}/grant", {"who": "bob", "role": "owner"})
    assert above.status_code == 422
    assert "Not granted: only an owner can grant, change or revoke the owner role" in above.text
    assert 'value="bob"' in above.text  # the form keeps what was asked
    taken = await tree["bob"].post(f"{base}/revoke", {"user": "alice", "role": "owner"})
    assert taken.status_code == 422 and "Not revoked" in taken.text

    # The last owner cannot leave: the use case's rule, said in words, undone.
    last = await browser.post(f"{base}/revoke", {"user": "alice", "role": "owner"})
    assert last.status_code == 409
    assert "an organization needs at least one owner" in last.text
    two = {"who": "carol", "user_group": "x", "role": "viewer"}
    both = await browser.post(f"{base}/grant", two)
    assert both.status_code == 422 and "give a login or an address, or a group" in both.text
    nobody = await browser.post(f"{base}/grant", {"user_group": "nope", "role": "viewer"})
    assert nobody.status_code == 422 and "no user group &#39;nope&#39;" in nobody.text
    unnamed = await browser.post(f"{base}/grant", {"who": "bob", "role": "boss"})
    assert unnamed.status_code == 422 and "Not granted: role" in unnamed.text
    assert await _members(alice, path) == {("alice", "owner"), ("bob", "admin")}
    assert await _events(server, "member.revoke") == []


async def test_a_viewer_or_editor_sees_no_controls_and_is_refused(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, org, group, env = tree["alice"], tree["org"], tree["group"], tree["env"]
    await alice.call(
        "POST", f"/organizations/{org['id']}/members", {"user": "bob", "role": "viewer"}
    )
    # Carol has not signed in yet: invited, she is editor of prod once she does.
    carol_editor = {"user": "carol", "role": "editor"}
    await alice.call("POST", f"/environments/{env['id']}/members", carol_editor, status=202)
    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": org["id"], "name": "ops"}, status=201
    )
    for who in ("bob", "carol"):
        browser = tree["bob"] if who == "bob" else (await person(server, "carol"))[1]
        for url in (f"/ui/organizations/{org['id']}", f"/ui/secret-groups/{group['id']}"):
            assert '/access"' not in (await browser.get(url)).text
        env_access = f"/ui/environments/{env['id']}/access"
        assert (await browser.get(env_access)).status_code == 403
        refused = await browser.post(f"{env_access}/grant", {"who": who, "role": "owner"})
        assert refused.status_code == 403
        taken = await browser.post(f"{env_access}/revoke", {"user": "alice", "role": "owner"})
        assert taken.status_code == 403

    bob = tree["bob"]
    groups = await bob.get(f"/ui/organizations/{org['id']}/user-groups")
    assert groups.status_code == 200
    assert "ops" in groups.text and 'id="group-name"' not in groups.text
    made = await bob.post(f"/ui/organizations/{org['id']}/user-groups", {"name": "mine"})
    assert made.status_code == 403
    page = await bob.get(f"/ui/user-groups/{team['id']}")
    assert page.status_code == 200 and 'id="member-login"' not in page.text
    added = await bob.post(f"/ui/user-groups/{team['id']}/members", {"user": "bob"})
    assert added.status_code == 403

    held = {("alice", "owner"), ("carol", "editor")}  # the creator owns what she creates
    assert await _members(alice, f"/environments/{env['id']}") == held
    listed = await alice.call("GET", f"/user-groups/?organization_id={org['id']}", status=200)
    assert [g["name"] for g in listed["items"]] == ["ops"]
    assert (await alice.call("GET", f"/user-groups/{team['id']}/members"))["items"] == []
    assert await _events(server, "member.revoke") == []
    assert len(await _events(server, "member.grant")) == 1  # bob's, by the API
    assert await _events(server, "user_group.member_add") == []


async def test_inherited_rows_show_where_they_are_held(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, org, group, env = (tree[k] for k in ("alice", "browser", "org", "group", "env"))
    await alice.call(
        "POST", f"/secret-groups/{group['id']}/members", {"user": "bob", "role": "editor"}
    )
    _dave_api, dave = await person(server, "dave")
    dave_admin = {"user": "dave", "role": "admin"}
    await alice.call("POST", f"/environments/{env['id']}/members", dave_admin, status=200)
    base = f"/ui/environments/{env['id']}/access"
    shown = await browser.get(base)
    org_link = f'<a href="/ui/organizations/{org["id"]}/access"><strong>acme</strong></a>'
    group_link = f'<a href="/ui/secret-groups/{group["id"]}/access"><strong>payments</strong></a>'
    assert org_link in shown.text and group_link in shown.text
    # alice's owner on acme and on payments (she made both), bob's editor on payments
    assert shown.text.count("(inherited)") == 3
    assert 'aria-label="Revoke editor from bob"' not in shown.text  # not held here
    assert 'aria-label="Revoke admin from dave"' in shown.text
    not_here = await browser.post(f"{base}/revoke", {"user": "bob", "role": "editor"})
    assert not_here.status_code == 422 and "holds no such role directly" in not_here.text

    # Dave, admin of this environment only, sees where each role is held, not a way there.
    as_dave = await dave.get(base)
    assert as_dave.status_code == 200
    assert "payments" in as_dave.text and group_link not in as_dave.text
    assert org_link not in as_dave.text
    assert 'id="grant-group"' not in as_dave.text  # he manages no user group
    group_page = await browser.get(f"/ui/secret-groups/{group['id']}")
    assert f'href="/ui/secret-groups/{group["id"]}/access"' in group_page.text
    org_page = await browser.get(f"/ui/organizations/{org['id']}")
    assert f'href="/ui/organizations/{org["id"]}/access"' in org_page.text
    assert f'href="/ui/organizations/{org["id"]}/user-groups"' in org_page.text


async def test_user_groups_are_created_filled_emptied_and_granted(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, org, env = tree["alice"], tree["browser"], tree["org"], tree["env"]
    groups = f"/ui/organizations/{org['id']}/user-groups"
    listed = await browser.get(groups)
    assert listed.status_code == 200 and 'id="group-name"' in listed.text
    made = await browser.post(groups, {"name": "ops", "description": "on call"})
    assert made.status_code == 200, made.text
    assert "User group ops created." in made.text
    again = await browser.post(groups, {"name": "ops"})
    assert again.status_code == 409 and "Not created" in again.text
    bad = await browser.post(groups, {"name": "no spaces"})
    assert bad.status_code == 422 and "Not created: name" in bad.text
    found = await alice.call("GET", f"/user-groups/?organization_id={org['id']}", status=200)
    (team,) = found["items"]
    assert f'href="/ui/user-groups/{team["id"]}"' in made.text

    page = f"/ui/user-groups/{team['id']}"
    shown = await browser.get(page)
    assert shown.status_code == 200 and "on call" in shown.text
    added = await browser.post(f"{page}/members", {"user": "bob"})
    assert added.status_code == 200, added.text
    assert "Added bob to ops." in added.text
    assert 'aria-label="Remove bob from ops"' in added.text
    stranger = await browser.post(f"{page}/members", {"user": "nobody-here"})
    assert stranger.status_code == 422
    assert "no user with login &#39;nobody-here&#39;" in stranger.text
    members = await alice.call("GET", f"/user-groups/{team['id']}/members", status=200)
    assert [m["login"] for m in members["items"]] == ["bob"]

    # The group is offered on the access page, and granted a role there.
    access = f"/ui/environments/{env['id']}/access"
    assert f'<option value="{team["id"]}">ops</option>' in (await browser.get(access)).text
    granted = await browser.post(f"{access}/grant", {"user_group": team["id"], "role": "viewer"})
    assert "User group ops now holds viewer here." in granted.text
    assert ("ops", "viewer") in await _members(alice, f"/environments/{env['id']}")

    removed = await browser.post(f"{page}/members/remove", {"user": "bob"})
    assert removed.status_code == 200 and "Removed bob from ops." in removed.text
    assert (await alice.call("GET", f"/user-groups/{team['id']}/members"))["items"] == []

    # The same events as the API's routes write.
    await alice.call("POST", "/user-groups/", {"organization_id": org["id"], "name": "dev"})
    made_events = await _events(server, "user_group.create")
    assert [e.details["name"] for e in made_events] == ["ops", "dev"]
    assert made_events[0].resource_type == made_events[1].resource_type == "user_group"
    member_path = f"/user-groups/{team['id']}/members"
    await alice.call("POST", member_path, {"user": "bob"}, status=201)
    await alice.call("DELETE", member_path, {"user": "bob"}, status=200)
    for action in ("user_group.member_add", "user_group.member_remove"):
        from_page, from_api = await _events(server, action)
        _same_event(from_page, from_api)
        assert from_page.details == {"name": "ops", "user": "bob"}
