"""Helpers for integration tests: log a user in through the local device flow."""

from __future__ import annotations

from typing import Any

from kavach.server.access import SYSTEM, RequestOrigin
from kavach.server.auth import approval
from tests.conftest import InProcessServer


async def approve(server: InProcessServer, user_code: str, login: str) -> None:
    """Approve a pending login as the headless CLI does."""
    async with server.runtime.sessionmaker() as session, session.begin():
        await approval.decide_as_operator(
            session,
            user_code=user_code,
            approve=True,
            login=login,
            actor=SYSTEM,
            origin=RequestOrigin(client_address="local"),
        )


async def login(server: InProcessServer, name: str = "alice") -> dict[str, Any]:
    """Run the whole device flow and return the token response's data."""
    started = await server.client.post("/api/v1/auth/device/code", json={})
    assert started.status_code == 200, started.text
    code = started.json()["data"]
    await approve(server, code["user_code"], name)
    answer = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": code["device_code"]}
    )
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    """Return an Authorization header."""
    return {"Authorization": f"Bearer {token}"}
