"""Every response is the envelope, with stable error codes; request ids; body limits."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import APIRouter

from kavach.server.app import create_app
from tests.conftest import InProcessServer, make_settings, random_keys

ENVELOPE_KEYS = {"success", "data", "error", "error_code"}


def _assert_failure(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False
    assert body["error_code"] == code
    assert isinstance(body["error"], str) and body["error"]
    return body


async def test_not_found_and_method_not_allowed(server: InProcessServer) -> None:
    _assert_failure(await server.client.get("/api/v1/nothing-here"), 404, "not_found")
    _assert_failure(await server.client.get("/api/v1/auth/refresh"), 405, "method_not_allowed")


async def test_validation_errors_name_the_fields_but_not_the_values(
    server: InProcessServer,
) -> None:
    response = await server.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": "", "surprise": "hunter2-secret"}
    )
    body = _assert_failure(response, 422, "validation_failed")
    assert body["error"] == (
        "invalid request: refresh_token: must not be empty; "
        "surprise: is not a field of this request"
    )
    assert body["data"] == {
        "errors": [
            {"field": "body.refresh_token", "message": "must not be empty"},
            {"field": "body.surprise", "message": "is not a field of this request"},
        ]
    }
    assert "hunter2" not in response.text


async def test_malformed_json_is_a_validation_error(server: InProcessServer) -> None:
    response = await server.client.post(
        "/api/v1/auth/device/token",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    _assert_failure(response, 422, "validation_failed")


async def test_missing_and_malformed_authorization(server: InProcessServer) -> None:
    _assert_failure(await server.client.get("/api/v1/auth/me"), 401, "not_authenticated")
    response = await server.client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    _assert_failure(response, 401, "not_authenticated")


async def test_oversized_body_is_413(server: InProcessServer) -> None:
    limit = server.runtime.settings.max_body_bytes
    response = await server.client.post(
        "/api/v1/auth/device/token",
        content=b"{" + b" " * limit + b"}",
        headers={"Content-Type": "application/json"},
    )
    _assert_failure(response, 413, "payload_too_large")


async def test_request_id_is_echoed_or_generated(server: InProcessServer) -> None:
    given = await server.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = await server.client.get("/healthz", headers={"X-Request-ID": "bad id; rm -rf"})
    assert "rm" not in made.headers["X-Request-ID"]
    assert len(made.headers["X-Request-ID"]) == 32


async def test_info_is_public(server: InProcessServer) -> None:
    body = (await server.client.get("/api/v1/info")).json()
    assert body["success"] is True
    assert body["data"]["identity_provider"] == "local"
    assert body["data"]["mode"] == "development"
    # What a commit may hold, so that a client checks it before showing or sending one.
    assert body["data"]["limits"] == {
        "max_secret_value_bytes": 65536,
        "max_secrets_per_version": 5000,
        "max_message_chars": 500,
        "max_body_bytes": 4194304,
    }


async def test_detailed_health_reports_database_and_migrations(server: InProcessServer) -> None:
    response = await server.client.get("/healthz/detailed")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["reachable"] is True
    assert body["migrations"]["at_head"] is True
    assert body["migrations"]["current"] == body["migrations"]["head"]


async def test_unexpected_error_is_a_500_envelope_without_details(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, None), keys=random_keys())
    boom = APIRouter()

    @boom.get("/api/v1/boom")
    async def explode() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    app.include_router(boom)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/v1/boom")
    _assert_failure(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_unreachable_database_is_503_not_500(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "postgresql://postgres@127.0.0.1:1/none")
    settings.auto_migrate = False
    settings.db.db_pool_timeout = 2
    app = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/healthz/detailed")
            assert health.status_code == 503
            assert health.json()["database"]["reachable"] is False
            live = await client.get("/healthz")
            assert live.status_code == 200
            response = await client.post("/api/v1/auth/device/code", json={})
    _assert_failure(response, 503, "service_unavailable")
