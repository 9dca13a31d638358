"""Who may change who holds a role: user groups, the last owner, concurrent revocations."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user


async def _org_with_team(alice: Api, role: str, name: str = "acme") -> dict[str, Any]:
    """Create an organization and a user group `team` holding `role` on it."""
    org = await alice.call("POST", "/organizations/", {"name": name}, status=201)
    team = await alice.call(
        "POST", "/user-groups/", {"organization_id": org["id"], "name": "team"}, status=201
    )
    await alice.call(
        "POST",
        f"/organizations/{org['id']}/members",
        {"user_group": "team", "role": role},
        status=200,
    )
    return {"org": org, "team": team, "members": f"/user-groups/{team['id']}/members"}


async def _roles(api: Api, org_id: str) -> set[tuple[str, str]]:
    """Return (subject, role) of every binding on the organization."""
    listed = (await api.call("GET", f"/organizations/{org_id}/members", status=200))["items"]
    return {
        (b["user"]["login"] if b["user"] else b["user_group"]["name"], b["role"]) for b in listed
    }


async def test_an_admin_cannot_join_or_empty_a_user_group_that_holds_owner(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    await user(server, "carol")
    made = await _org_with_team(alice, "owner")
    org, team, members = made["org"], made["team"], made["members"]
    await alice.call("POST", members, {"user": "alice"}, status=201)
    await alice.call(
        "POST", f"/organizations/{org['id']}/members", {"user": "bob", "role": "admin"}, status=200
    )

    joined = await bob.call("POST", members, {"user": "bob"}, status=403)
    assert joined["error_code"] == "forbidden"
    assert "owner" in joined["error"]
    await bob.call("POST", members, {"user": "carol"}, status=403)
    await bob.call("DELETE", members, {"user": "alice"}, status=403)
    await bob.call("PATCH", f"/user-groups/{team['id']}", {"name": "renamed"}, status=403)
    await bob.call("DELETE", f"/user-groups/{team['id']}", status=403)
    await bob.call("DELETE", f"/organizations/{org['id']}/members", {"user": "alice"}, status=403)
    assert [m["login"] for m in (await alice.call("GET", members))["items"]] == ["alice"]
    assert await _roles(alice, org["id"]) == {
        ("alice", "owner"),
        ("team", "owner"),
        ("bob", "admin"),
    }

    # The owner may do all of it.
    await alice.call("POST", members, {"user": "carol"}, status=201)
    await alice.call("DELETE", members, {"user": "carol"}, status=200)
    await alice.call("PATCH", f"/user-groups/{team['id']}", {"name": "owners"}, status=200)


async def test_membership_needs_the_right_to_grant_each_role_the_group_holds(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    await user(server, "carol")
    made = await _org_with_team(alice, "admin")
    org, members = made["org"], made["members"]
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    await alice.call(
        "POST", f"/organizations/{org['id']}/members", {"user": "bob", "role": "admin"}, status=200
    )
    # An admin may hand out admin, so adding to a group holding admin is fine.
    await bob.call("POST", members, {"user": "carol"}, status=201)
    await bob.call("DELETE", members, {"user": "carol"}, status=200)

    # Owner anywhere the group holds it, even on one secret group, needs an owner there.
    await alice.call(
        "POST",
        f"/secret-groups/{group['id']}/members",
        {"user_group": "team", "role": "owner"},
        status=200,
    )
    refused = await bob.call("POST", members, {"user": "carol"}, status=403)
    assert "secret group web" in refused["error"]
    await alice.call("POST", members, {"user": "carol"}, status=201)
    await bob.call("DELETE", members, {"user": "carol"}, status=403)
    await bob.call("PATCH", f"/user-groups/{made['team']['id']}", {"description": "x"}, status=403)


async def test_only_a_group_s_managers_bind_roles_to_it(server: InProcessServer) -> None:
    alice, dave = await user(server, "alice"), await user(server, "dave")
    made = await _org_with_team(alice, "viewer")
    org, members = made["org"], made["members"]
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    await alice.call(
        "POST", f"/environments/{env['id']}/members", {"user": "dave", "role": "owner"}, 200
    )
    # Dave owns one environment: binding owner there to the organization's team would take
    # the team out of its admins' hands. He may still grant his environment to users.
    refused = await dave.call(
        "POST",
        f"/environments/{env['id']}/members",
        {"user_group": "team", "role": "owner"},
        status=403,
    )
    assert "manage its members" in refused["error"]
    await dave.call(
        "POST", f"/environments/{env['id']}/members", {"user": "alice", "role": "viewer"}, 200
    )
    await user(server, "carol")
    await alice.call("POST", members, {"user": "carol"}, status=201)


async def test_ownership_held_through_a_user_group_counts_and_is_kept(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    made = await _org_with_team(alice, "owner")
    org, team, members = made["org"], made["team"], made["members"]
    org_members = f"/organizations/{org['id']}/members"

    # An owner group without members owns nothing: alice stays the last owner.
    last = await alice.call("DELETE", org_members, {"user": "alice"}, status=409)
    assert last["error_code"] == "last_owner"

    # Once she is in the group, she may hand ownership over to it.
    await alice.call("POST", members, {"user": "alice"}, status=201)
    await alice.call("DELETE", org_members, {"user": "alice"}, status=200)
    assert await _roles(alice, org["id"]) == {("team", "owner")}

    # Now every way of ending the group's ownership keeps the organization owned.
    for method, path, body in (
        ("DELETE", members, {"user": "alice"}),
        ("DELETE", f"/user-groups/{team['id']}", None),
        ("DELETE", org_members, {"user_group": "team"}),
        ("POST", org_members, {"user_group": "team", "role": "admin"}),
    ):
        refused = await alice.call(method, path, body, status=409)
        assert refused["error_code"] == "last_owner", (method, path)
    assert await _roles(alice, org["id"]) == {("team", "owner")}

    await alice.call("POST", members, {"user": "bob"}, status=201)
    await alice.call("DELETE", members, {"user": "alice"}, status=200)
    await alice.call("GET", org_members, status=404)
    assert await _roles(bob, org["id"]) == {("team", "owner")}


async def test_owners_revoking_each_other_at_once_leave_one_owner(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    orgs = []
    for index in range(4):
        org = await alice.call("POST", "/organizations/", {"name": f"org{index}"}, status=201)
        members = f"/organizations/{org['id']}/members"
        await alice.call("POST", members, {"user": "bob", "role": "owner"}, status=200)
        orgs.append(members)

    async def revoke(api: Api, members: str, login: str) -> int:
        response = await server.client.request(
            "DELETE", f"/api/v1{members}", json={"user": login}, headers=api.headers
        )
        return response.status_code

    statuses = await asyncio.gather(
        *(
            call
            for members in orgs
            for call in (revoke(alice, members, "bob"), revoke(bob, members, "alice"))
        )
    )
    for index, members in enumerate(orgs):
        pair = statuses[2 * index : 2 * index + 2]
        # The later revocation is refused: as the last owner's (409), or, once the first has
        # committed, as that of someone who no longer holds a role there (404).
        assert pair.count(200) == 1 and set(pair) - {200} <= {404, 409}, (members, pair)
        # Whoever revoked the other is the one owner left.
        survivor = alice if pair[0] == 200 else bob
        remaining = (await survivor.call("GET", members, status=200))["items"]
        assert [b["role"] for b in remaining] == ["owner"], remaining
