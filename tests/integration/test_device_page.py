"""The local identity provider's approval page: CSRF, loopback only, approve and deny."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import InProcessServer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _start(server: InProcessServer) -> dict[str, str]:
    data: dict[str, str] = (await server.client.post("/api/v1/auth/device/code", json={})).json()[
        "data"
    ]
    return data


async def _form_token(client: httpx.AsyncClient, user_code: str = "") -> str:
    page = await client.get("/device", params={"user_code": user_code})
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


async def test_page_prefills_the_code(server: InProcessServer) -> None:
    data = await _start(server)
    page = await server.client.get(data["verification_uri_complete"])
    assert page.status_code == 200
    assert f'value="{data["user_code"]}"' in page.text


async def test_approve_through_the_form_logs_the_device_in(server: InProcessServer) -> None:
    data = await _start(server)
    token = await _form_token(server.client, data["user_code"])
    decided = await server.client.post(
        "/device",
        data={
            "user_code": data["user_code"],
            "login": "Bob",
            "action": "approve",
            "csrf_token": token,
        },
    )
    assert decided.status_code == 200, decided.text
    assert "approved" in decided.text
    polled = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": data["device_code"]}
    )
    assert polled.status_code == 200
    assert polled.json()["data"]["user"]["login"] == "bob"


async def test_deny_through_the_form(server: InProcessServer) -> None:
    data = await _start(server)
    token = await _form_token(server.client)
    decided = await server.client.post(
        "/device",
        data={"user_code": data["user_code"], "action": "deny", "csrf_token": token},
    )
    assert decided.status_code == 200
    polled = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": data["device_code"]}
    )
    assert polled.json()["error_code"] == "access_denied"


async def test_post_without_matching_csrf_cookie_is_refused(server: InProcessServer) -> None:
    data = await _start(server)
    token = await _form_token(server.client)
    server.client.cookies.clear()
    decided = await server.client.post(
        "/device",
        data={
            "user_code": data["user_code"],
            "login": "eve",
            "action": "approve",
            "csrf_token": token,
        },
    )
    assert decided.status_code == 403
    polled = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": data["device_code"]}
    )
    assert polled.json()["error_code"] == "authorization_pending"


async def test_forged_csrf_token_is_refused(server: InProcessServer) -> None:
    await _form_token(server.client)
    forged = "abc.0123"
    server.client.cookies.set("kavach_device_csrf", forged, path="/device")
    decided = await server.client.post(
        "/device", data={"user_code": "BCDF-GHJK", "action": "deny", "csrf_token": forged}
    )
    assert decided.status_code == 403


async def test_unknown_code_is_a_clear_404(server: InProcessServer) -> None:
    token = await _form_token(server.client)
    decided = await server.client.post(
        "/device",
        data={"user_code": "BCDF-GHJK", "login": "bob", "action": "approve", "csrf_token": token},
    )
    assert decided.status_code == 404
    assert "unknown, used or expired" in decided.text


async def test_remote_addresses_are_refused_by_default(server: InProcessServer) -> None:
    remote = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app, client=("203.0.113.9", 4000)),
        base_url="http://127.0.0.1:8080",
    )
    async with remote:
        page = await remote.get("/device")
        assert page.status_code == 403
        assert "csrf_token" not in page.text


@pytest.mark.parametrize("auth_overrides", [{"rate_limit_device_approve": "2/minute"}])
async def test_approval_attempts_are_rate_limited(server: InProcessServer) -> None:
    statuses = []
    for _ in range(3):
        token = await _form_token(server.client)
        decided = await server.client.post(
            "/device",
            data={"user_code": "BCDF-GHJK", "login": "x", "action": "approve", "csrf_token": token},
        )
        statuses.append(decided.status_code)
    assert statuses == [404, 404, 429]
