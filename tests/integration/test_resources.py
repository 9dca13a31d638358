"""Organizations, secret groups, environments: names, uniqueness, visibility, deletes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from kavach.server.audit.models import AuditEvent
from kavach.server.rbac.models import RoleBinding
from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login


class Api:
    """A signed-in user's view of the API."""

    def __init__(self, server: InProcessServer, token: str) -> None:
        self.server = server
        self.headers = bearer(token)

    async def call(
        self, method: str, path: str, json: object = None, status: int | None = None
    ) -> Any:
        response = await self.server.client.request(
            method, f"/api/v1{path}", json=json, headers=self.headers
        )
        body = response.json()
        if status is not None:
            assert response.status_code == status, (method, path, response.text)
        return body["data"] if body["success"] else body


async def user(server: InProcessServer, name: str) -> Api:
    """Log a user in and return their API."""
    return Api(server, (await login(server, name))["access_token"])


async def test_create_tree_and_creator_is_owner(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    assert org["role"] == "owner"
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    assert env["organization_id"] == org["id"]
    assert (await alice.call("GET", "/organizations/by-name/acme", status=200))["id"] == org["id"]
    listed = (await alice.call("GET", f"/secret-groups/{group['id']}/environments?name=prod"))[
        "items"
    ]
    assert [e["name"] for e in listed] == ["prod"]
    members = (await alice.call("GET", f"/environments/{env['id']}/members"))["items"]
    assert [(m["resource_type"], m["role"], m["inherited"]) for m in members] == [
        ("organization", "owner", True),
        ("secret_group", "owner", True),
        ("environment", "owner", False),
    ]


@pytest.mark.parametrize("name", ["Acme", "-acme", "a" * 64, "ac me", "", "acme/x"])
async def test_bad_names_are_422(server: InProcessServer, name: str) -> None:
    alice = await user(server, "alice")
    body = await alice.call("POST", "/organizations/", {"name": name}, status=422)
    assert body["error_code"] == "validation_failed"


async def test_any_lowercase_name_is_allowed_and_duplicates_conflict(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    dup = await alice.call("POST", "/organizations/", {"name": "acme"}, status=409)
    assert dup["error_code"] == "already_exists"
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    for name in ("qa-2", "eu.west_1", "prod"):
        await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": name}, status=201
        )
    again = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=409
    )
    assert again["error_code"] == "already_exists"
    other = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "api"}, status=201
    )
    await alice.call(
        "POST", f"/secret-groups/{other['id']}/environments", {"name": "prod"}, status=201
    )
    renamed = await alice.call(
        "PATCH", f"/secret-groups/{other['id']}", {"name": "web"}, status=409
    )
    assert renamed["error_code"] == "already_exists"


async def test_patch_is_partial(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    org = await alice.call(
        "POST", "/organizations/", {"name": "acme", "description": "the company"}, status=201
    )
    renamed = await alice.call(
        "PATCH", f"/organizations/{org['id']}", {"name": "acme2"}, status=200
    )
    assert (renamed["name"], renamed["description"]) == ("acme2", "the company")


async def test_outsiders_see_nothing(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    assert (await bob.call("GET", "/organizations/", status=200))["items"] == []
    for path in (
        f"/organizations/{org['id']}",
        "/organizations/by-name/acme",
        f"/organizations/{org['id']}/members",
        "/organizations/not-a-uuid",
    ):
        assert (await bob.call("GET", path, status=404))["error_code"] == "not_found"
    denied = await bob.call("DELETE", f"/organizations/{org['id']}", status=404)
    assert denied["error_code"] == "not_found"


async def test_delete_needs_cascade_when_children_exist(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    refused = await alice.call("DELETE", f"/organizations/{org['id']}", status=409)
    assert refused["error_code"] == "has_children"
    refused = await alice.call("DELETE", f"/secret-groups/{group['id']}", status=409)
    assert refused["error_code"] == "has_children"
    await alice.call("DELETE", f"/organizations/{org['id']}?cascade=true", status=200)
    await alice.call("GET", f"/environments/{env['id']}", status=404)
    async with server.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(RoleBinding)) == 0
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "organization.delete")
        )
    assert event is not None
    assert event.details["cascade"] is True
    assert event.details["removed"] == {"organizations": 1, "secret_groups": 1, "environments": 1}
