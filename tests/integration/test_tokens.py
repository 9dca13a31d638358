"""Access and refresh tokens: rotation, reuse detection, types, expiry, logout."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import jwt
from sqlalchemy import select

from kavach.server.auth.models import LoginSession
from kavach.server.db.base import utcnow
from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login


async def _refresh(server: InProcessServer, token: str) -> tuple[int, dict[str, object]]:
    response = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    return response.status_code, response.json()


async def test_access_token_claims(server: InProcessServer) -> None:
    tokens = await login(server)
    header = jwt.get_unverified_header(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert set(claims) >= {"iss", "aud", "sub", "iat", "exp", "jti", "typ", "sid"}
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] in (900, 901)  # exp is rounded up
    assert claims["sub"] == tokens["user"]["id"]


async def test_refresh_rotates_and_old_token_is_dead(server: InProcessServer) -> None:
    tokens = await login(server)
    status, body = await _refresh(server, tokens["refresh_token"])
    assert status == 200, body
    fresh = body["data"]
    assert isinstance(fresh, dict)
    assert fresh["refresh_token"] != tokens["refresh_token"]
    me = await server.client.get("/api/v1/auth/me", headers=bearer(fresh["access_token"]))
    assert me.status_code == 200
    status, again = await _refresh(server, fresh["refresh_token"])
    assert status == 200, again


async def test_reused_refresh_token_revokes_the_whole_session(server: InProcessServer) -> None:
    tokens = await login(server)
    status, body = await _refresh(server, tokens["refresh_token"])
    assert status == 200
    fresh = body["data"]
    assert isinstance(fresh, dict)
    status, reuse = await _refresh(server, tokens["refresh_token"])
    assert (status, reuse["error_code"]) == (401, "refresh_token_reused")
    # The thief's and the owner's newer tokens are both dead now.
    status, body = await _refresh(server, fresh["refresh_token"])
    assert (status, body["error_code"]) == (401, "invalid_refresh_token")
    me = await server.client.get("/api/v1/auth/me", headers=bearer(fresh["access_token"]))
    assert (me.status_code, me.json()["error_code"]) == (401, "invalid_token")
    async with server.runtime.sessionmaker() as session:
        record = await session.scalar(select(LoginSession))
    assert record is not None and record.revoked_reason == "token_reuse"


async def test_concurrent_use_of_one_refresh_token_succeeds_at_most_once(
    server: InProcessServer,
) -> None:
    tokens = await login(server)
    results = await asyncio.gather(*(_refresh(server, tokens["refresh_token"]) for _ in range(4)))
    assert sorted(status for status, _ in results) == [200, 401, 401, 401]
    refused = {str(body["error_code"]) for status, body in results if status == 401}
    assert refused <= {"refresh_token_reused", "invalid_refresh_token"}


async def test_access_token_is_not_a_refresh_token_and_vice_versa(
    server: InProcessServer,
) -> None:
    tokens = await login(server)
    status, body = await _refresh(server, tokens["access_token"])
    assert (status, body["error_code"]) == (401, "invalid_refresh_token")
    me = await server.client.get("/api/v1/auth/me", headers=bearer(tokens["refresh_token"]))
    assert (me.status_code, me.json()["error_code"]) == (401, "invalid_token")


async def test_expired_access_token_says_token_expired(server: InProcessServer) -> None:
    tokens = await login(server)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    old = server.runtime.access_tokens.issue(
        user_id=uuid.UUID(claims["sub"]),
        session_id=uuid.UUID(claims["sid"]),
        now=utcnow() - timedelta(hours=1),
    )
    me = await server.client.get("/api/v1/auth/me", headers=bearer(old.token))
    assert (me.status_code, me.json()["error_code"]) == (401, "token_expired")
    assert me.headers["WWW-Authenticate"] == "Bearer"


async def test_forged_and_unsigned_tokens_are_refused(server: InProcessServer) -> None:
    tokens = await login(server)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, b"x" * 32, algorithm="HS256")
    unsigned = jwt.encode(claims, "", algorithm="none")
    for token in (forged, unsigned, "garbage", tokens["access_token"] + "x"):
        me = await server.client.get("/api/v1/auth/me", headers=bearer(token))
        assert (me.status_code, me.json()["error_code"]) == (401, "invalid_token"), token


async def test_logout_ends_access_and_refresh_tokens(server: InProcessServer) -> None:
    tokens = await login(server)
    out = await server.client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.json() == {
        "success": True,
        "data": {"logged_out": True},
        "error": None,
        "error_code": None,
    }
    me = await server.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    status, body = await _refresh(server, tokens["refresh_token"])
    assert (status, body["error_code"]) == (401, "invalid_refresh_token")


async def test_sessions_are_independent(server: InProcessServer) -> None:
    first = await login(server, "alice")
    second = await login(server, "alice")
    await server.client.post("/api/v1/auth/logout", headers=bearer(first["access_token"]))
    me = await server.client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
