"""The local device flow on both databases: pending, slow_down, approve, deny, expire."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from kavach.server.access import SYSTEM, RequestOrigin
from kavach.server.audit.models import AuditEvent
from kavach.server.auth import approval
from kavach.server.auth.models import DeviceAuthorization
from kavach.server.db.base import utcnow
from kavach.server.errors import NotFound
from tests.conftest import InProcessServer
from tests.integration.helpers import approve, bearer, login


async def _start(server: InProcessServer) -> dict[str, Any]:
    response = await server.client.post("/api/v1/auth/device/code", json={})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["error"] is None
    data: dict[str, Any] = body["data"]
    return data


async def _poll(server: InProcessServer, device_code: str) -> tuple[int, dict[str, object]]:
    response = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": device_code}
    )
    return response.status_code, response.json()


async def test_device_code_response_follows_rfc_8628(server: InProcessServer) -> None:
    data = await _start(server)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", data["user_code"])
    assert data["verification_uri"] == "http://127.0.0.1:8080/device"
    assert data["verification_uri_complete"] == (
        f"http://127.0.0.1:8080/device?user_code={data['user_code']}"
    )
    assert data["expires_in"] == 900
    assert data["interval"] == 5
    assert len(data["device_code"]) >= 40


async def test_device_code_is_stored_only_as_a_hash(server: InProcessServer) -> None:
    data = await _start(server)
    async with server.runtime.sessionmaker() as session:
        record = await session.scalar(select(DeviceAuthorization))
    assert record is not None
    assert data["device_code"] not in record.device_code_hash
    assert len(record.device_code_hash) == 64


async def test_pending_then_slow_down_then_tokens(server: InProcessServer) -> None:
    data = await _start(server)
    status, body = await _poll(server, data["device_code"])
    assert (status, body["error_code"]) == (400, "authorization_pending")
    status, body = await _poll(server, data["device_code"])
    assert (status, body["error_code"]) == (400, "slow_down")
    assert body["data"] == {"interval": 10}
    await approve(server, data["user_code"], "alice")
    status, body = await _poll(server, data["device_code"])
    assert status == 200, body
    tokens = body["data"]
    assert isinstance(tokens, dict)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("kvr_")
    assert tokens["user"]["login"] == "alice"
    assert tokens["user"]["provider"] == "local"
    me = await server.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["data"]["login"] == "alice"


async def test_device_code_is_single_use(server: InProcessServer) -> None:
    data = await _start(server)
    await approve(server, data["user_code"], "alice")
    assert (await _poll(server, data["device_code"]))[0] == 200
    status, body = await _poll(server, data["device_code"])
    assert (status, body["error_code"]) == (400, "invalid_grant")


async def test_user_code_cannot_be_approved_twice(server: InProcessServer) -> None:
    data = await _start(server)
    await approve(server, data["user_code"], "alice")
    with pytest.raises(NotFound):
        await approve(server, data["user_code"], "mallory")


async def test_denied_login_answers_access_denied(server: InProcessServer) -> None:
    data = await _start(server)
    async with server.runtime.sessionmaker() as session, session.begin():
        await approval.decide_as_operator(
            session,
            user_code=data["user_code"].lower().replace("-", " "),
            approve=False,
            login=None,
            actor=SYSTEM,
            origin=RequestOrigin(),
        )
    status, body = await _poll(server, data["device_code"])
    assert (status, body["error_code"]) == (400, "access_denied")


async def test_expired_code_answers_expired_token_and_cannot_be_approved(
    server: InProcessServer,
) -> None:
    data = await _start(server)
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(DeviceAuthorization).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(NotFound):
        await approve(server, data["user_code"], "alice")
    status, body = await _poll(server, data["device_code"])
    assert (status, body["error_code"]) == (400, "expired_token")


async def test_unknown_device_code_is_invalid_grant(server: InProcessServer) -> None:
    status, body = await _poll(server, "not-a-real-code")
    assert (status, body["error_code"]) == (400, "invalid_grant")


async def test_invalid_local_user_name_is_refused(server: InProcessServer) -> None:
    data = await _start(server)
    async with server.runtime.sessionmaker() as session:
        with pytest.raises(Exception, match="user name"):
            await approval.decide_as_operator(
                session,
                user_code=data["user_code"],
                approve=True,
                login="../root",
                actor=SYSTEM,
                origin=RequestOrigin(),
            )


async def test_login_and_failures_are_audited(server: InProcessServer) -> None:
    await login(server, "alice")
    await _poll(server, "bogus-device-code")
    async with server.runtime.sessionmaker() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    actions = [(e.action, e.outcome, e.actor_label) for e in events]
    assert ("auth.device.approve", "success", None) in actions
    assert ("auth.login", "success", "alice") in actions
    assert ("auth.login", "failure", None) in actions
    failed = next(e for e in events if e.outcome == "failure")
    assert failed.details == {"reason": "invalid_grant", "identity_provider": "local"}
    assert failed.client_address == "127.0.0.1"
    assert failed.request_id


@pytest.mark.parametrize("auth_overrides", [{"rate_limit_device_code": "2/day"}])
async def test_device_code_requests_are_rate_limited(server: InProcessServer) -> None:
    for _ in range(2):
        assert (await server.client.post("/api/v1/auth/device/code", json={})).status_code == 200
    limited = await server.client.post("/api/v1/auth/device/code", json={})
    assert limited.status_code == 429
    assert limited.json()["error_code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
