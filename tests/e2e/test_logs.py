"""What the server writes to its logs after real logins: one line per request, no secrets."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Cli, KavachServer

pytestmark = pytest.mark.e2e


def _request_lines(server: KavachServer) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("event") == "request"]


class TaggedApi:
    """Call the API with a fresh X-Request-ID each time, remembering what each call should log."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.expected: dict[str, tuple[str, str, int]] = {}  # id -> method, route, status

    def call(
        self, method: str, path: str, status: int, *, token: str | None = None, **kw: Any
    ) -> Any:
        """Send a request, check its status and echoed id; return the envelope's data."""
        tag = f"e2e-{len(self.expected)}-{secrets.token_hex(4)}"
        headers = {"X-Request-ID": tag}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.request(method, path, headers=headers, **kw)
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] == tag
        self.expected[tag] = (method, path.partition("?")[0], status)
        return response.json()["data"] if "json" in response.headers["content-type"] else None


def test_request_log_lines_carry_no_secrets(server: KavachServer, cli: Cli) -> None:
    seen: list[str] = []  # every secret the test comes across
    pending = cli.start_login(server.url)
    server.approve(pending.code, "alice")
    assert pending.wait().code == 0
    assert cli.run("status").code == 0
    seen += cli.tokens(server.url)

    with httpx.Client(base_url=server.url, timeout=10) as client:
        api = TaggedApi(client)
        started = api.call("POST", "/api/v1/auth/device/code", 200, json={})
        poll = {"device_code": started["device_code"]}
        seen.append(started["device_code"])
        api.call("POST", "/api/v1/auth/device/token", 400, json=poll)
        api.call("GET", f"/device?user_code={started['user_code']}", 200)
        server.approve(started["user_code"], "dave")
        tokens = api.call("POST", "/api/v1/auth/device/token", 200, json=poll)
        seen += [tokens["access_token"], tokens["refresh_token"]]
        me = api.call("GET", "/api/v1/auth/me", 200, token=tokens["access_token"])
        assert me["login"] == "dave"
        body = {"refresh_token": tokens["refresh_token"]}
        rotated = api.call("POST", "/api/v1/auth/refresh", 200, json=body)
        seen += [rotated["access_token"], rotated["refresh_token"]]
        forged = f"forged-{secrets.token_urlsafe(16)}"
        seen.append(forged)
        api.call("GET", "/api/v1/auth/me", 401, token=forged)
        # A path with an id in it is logged as its route template, not as the path.
        some_id = str(uuid.uuid4())
        templated = client.get(
            f"/api/v1/organizations/{some_id}",
            headers={"Authorization": f"Bearer {rotated['access_token']}"},
        )
        templated_id = templated.headers["x-request-id"]
        hidden = secrets.token_hex(8)
        unmatched = client.get(f"/api/v1/no-such-thing/{hidden}")
        assert unmatched.status_code == 404
        generated_id = unmatched.headers["x-request-id"]

    assert cli.run("logout").code == 0
    assert server.unclean_exit(server.stop()) is None

    lines = _request_lines(server)
    for line in lines:
        assert isinstance(line.get("method"), str) and line["method"], line
        assert isinstance(line.get("route"), str) and line["route"], line
        assert isinstance(line.get("status"), int), line
        assert isinstance(line.get("duration_ms"), int | float) and line["duration_ms"] >= 0, line
        assert isinstance(line.get("request_id"), str) and line["request_id"], line
        assert "?" not in line["route"], line
    for tag, (method, route, status) in api.expected.items():
        mine = [line for line in lines if line["request_id"] == tag]
        assert len(mine) == 1, (tag, mine)
        assert (mine[0]["method"], mine[0]["route"], mine[0]["status"]) == (method, route, status)
    (unmatched_line,) = [line for line in lines if line["request_id"] == generated_id]
    assert (unmatched_line["method"], unmatched_line["status"]) == ("GET", 404)
    (templated_line,) = [line for line in lines if line["request_id"] == templated_id]
    assert templated_line["route"] == "/api/v1/organizations/{id}"
    assert templated_line["status"] == templated.status_code
    # The CLI's own calls are logged too: its login polls, status, logout.
    routes = {line["route"] for line in lines}
    assert {"/api/v1/auth/device/token", "/api/v1/auth/me", "/api/v1/auth/logout"} <= routes

    logged = server.stderr() + server.stdout()
    assert hidden not in logged, "an unmatched path was logged verbatim"
    assert some_id not in logged, "a path was logged instead of its route template"
    for secret in seen:
        assert secret not in logged
        assert f"Bearer {secret}" not in logged
