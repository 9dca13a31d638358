"""Approving a local login: the /device page decides nothing; a signed-in user approves for
themselves through the API, never for someone else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login


async def _start(server: InProcessServer) -> dict[str, str]:
    data: dict[str, str] = (await server.client.post("/api/v1/auth/device/code", json={})).json()[
        "data"
    ]
    return data


async def _poll(server: InProcessServer, data: dict[str, str]) -> httpx.Response:
    return await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": data["device_code"]}
    )


async def _decide(
    server: InProcessServer, verb: str, token: str, user_code: str, **extra: Any
) -> httpx.Response:
    return await server.client.post(
        f"/api/v1/auth/device/{verb}",
        json={"user_code": user_code, **extra},
        headers=bearer(token),
    )


async def test_page_shows_the_code_and_how_to_approve_it(server: InProcessServer) -> None:
    data = await _start(server)
    page = await server.client.get(data["verification_uri_complete"])
    assert page.status_code == 200
    assert f"kavach login --approve {data['user_code']}" in page.text
    assert f"kavach server approve {data['user_code']} --user NAME" in page.text
    assert "<form" not in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Nothing but a well-formed code is echoed into the page.
    odd = await server.client.get("/device", params={"user_code": "<script>x</script>"})
    assert "script" not in odd.text and "kavach login --approve CODE" in odd.text


@pytest.mark.parametrize(
    "headers", [{}, {"X-Forwarded-For": "127.0.0.1"}], ids=["loopback", "forwarded"]
)
async def test_the_page_approves_nothing_from_any_address(
    server: InProcessServer, headers: dict[str, str]
) -> None:
    data = await _start(server)
    page = await server.client.get("/device")
    csrf = page.cookies.get("kavach_device_csrf", "")
    form = {"user_code": data["user_code"], "login": "owner", "action": "approve"}
    decided = await server.client.post(
        "/device", data={**form, "csrf_token": csrf}, headers=headers
    )
    assert decided.status_code == 405
    assert (await _poll(server, data)).json()["error_code"] == "authorization_pending"


async def test_a_signed_in_user_approves_a_login_for_themselves(server: InProcessServer) -> None:
    alice = await login(server, "alice")
    data = await _start(server)
    decided = await _decide(server, "approve", alice["access_token"], data["user_code"].lower())
    assert decided.status_code == 200, decided.text
    assert decided.json()["data"]["user_code"] == data["user_code"]
    assert decided.json()["data"]["user"]["login"] == "alice"
    polled = await _poll(server, data)
    assert polled.status_code == 200, polled.text
    assert polled.json()["data"]["user"]["id"] == alice["user"]["id"]
    async with server.runtime.sessionmaker() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    approved = [e for e in events if e.action == "auth.device.approve"][-1]
    assert (approved.actor_type, approved.actor_label) == ("user", "alice")
    assert approved.details is not None
    assert approved.details["via"] == "session" and approved.details["user"] == "alice"
    assert [e.actor_label for e in events if e.action == "auth.login"] == ["alice", "alice"]


async def test_nobody_approves_for_another_user(server: InProcessServer) -> None:
    await login(server, "owner")
    mallory = await login(server, "mallory")
    data = await _start(server)
    for field in ({"login": "owner"}, {"user": "owner"}, {"user_id": "x"}):
        refused = await _decide(
            server, "approve", mallory["access_token"], data["user_code"], **field
        )
        assert (refused.status_code, refused.json()["error_code"]) == (422, "validation_failed")
    assert (await _poll(server, data)).json()["error_code"] == "authorization_pending"
    await _decide(server, "approve", mallory["access_token"], data["user_code"])
    assert (await _poll(server, data)).json()["data"]["user"]["login"] == "mallory"


async def test_a_service_token_cannot_approve(server: InProcessServer) -> None:
    alice = await login(server, "alice")
    api = bearer(alice["access_token"])
    org = await server.client.post("/api/v1/organizations/", json={"name": "o"}, headers=api)
    group = await server.client.post(
        f"/api/v1/organizations/{org.json()['data']['id']}/secret-groups",
        json={"name": "g"},
        headers=api,
    )
    env = await server.client.post(
        f"/api/v1/secret-groups/{group.json()['data']['id']}/environments",
        json={"name": "e"},
        headers=api,
    )
    created = await server.client.post(
        f"/api/v1/environments/{env.json()['data']['id']}/tokens",
        json={"name": "ci", "role": "editor"},
        headers=api,
    )
    data = await _start(server)
    refused = await _decide(server, "approve", created.json()["data"]["token"], data["user_code"])
    assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
    anonymous = await server.client.post(
        "/api/v1/auth/device/approve", json={"user_code": data["user_code"]}
    )
    assert anonymous.status_code == 401
    assert (await _poll(server, data)).json()["error_code"] == "authorization_pending"


async def test_a_signed_in_user_denies_a_login(server: InProcessServer) -> None:
    alice = await login(server, "alice")
    data = await _start(server)
    denied = await _decide(server, "deny", alice["access_token"], data["user_code"])
    assert denied.status_code == 200, denied.text
    assert denied.json()["data"] == {
        "user_code": data["user_code"],
        "approved": False,
        "user": None,
    }
    assert (await _poll(server, data)).json()["error_code"] == "access_denied"
    again = await _decide(server, "approve", alice["access_token"], data["user_code"])
    assert (again.status_code, again.json()["error_code"]) == (404, "not_found")


@pytest.mark.parametrize("auth_overrides", [{"rate_limit_device_approve": "2/day"}])
async def test_approval_attempts_are_limited_per_user(server: InProcessServer) -> None:
    alice, bob = await login(server, "alice"), await login(server, "bob")
    statuses = [
        (await _decide(server, "approve", alice["access_token"], "BCDF-GHJK")).status_code
        for _ in range(3)
    ]
    assert statuses == [404, 404, 429]
    # Another user is counted apart: the key is who asks, not where from.
    assert (await _decide(server, "approve", bob["access_token"], "BCDF-GHJK")).status_code == 404


@pytest.mark.parametrize("auth_overrides", [{"enable_local_idp": False}])
async def test_no_local_logins_when_the_local_provider_is_off(server: InProcessServer) -> None:
    assert (await server.client.get("/device")).status_code == 404
    started = await server.client.post("/api/v1/auth/device/code", json={})
    assert (started.status_code, started.json()["error_code"]) == (404, "not_found")
