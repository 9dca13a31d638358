"""A logged-in session over time: transparent refresh, reuse detection, logout."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.harness import Cli, KavachServer, ServerFactory

# SQLite only: this is the command line's side of a session; the server's side (refresh,
# replay, logout) runs on both databases in tests/integration/test_tokens.py.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]


def _log_in(server: KavachServer, cli: Cli, user: str) -> None:
    pending = cli.start_login(server.url)
    server.approve(pending.code, user)
    result = pending.wait()
    assert result.code == 0, result


def test_expired_access_token_is_refreshed_and_a_replayed_refresh_token_ends_the_session(
    start_server: ServerFactory, cli: Cli
) -> None:
    server = start_server(access_token_ttl_seconds=2)
    _log_in(server, cli, "alice")
    old_access, old_refresh = cli.tokens(server.url)
    with httpx.Client(base_url=server.url, timeout=10) as api:
        time.sleep(3)
        expired = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {old_access}"})
        assert expired.status_code == 401
        assert expired.json()["error_code"] == "token_expired"

        # Three processes find the token expired at once; they must spend the refresh
        # token once between them, or the server would see a reuse and end the session.
        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = list(pool.map(lambda _: cli.run("status", "--json"), range(3)))

        for status in statuses:
            assert status.code == 0, status
            assert json.loads(status.stdout)["user"]["login"] == "alice"
            assert old_refresh not in status.stdout + status.stderr
        new_access, new_refresh = cli.tokens(server.url)
        assert new_refresh != old_refresh, "the refresh token was not rotated"
        assert new_access != old_access
        # The session survived the race (a double spend would have revoked it).
        still = cli.run("status", "--json")
        assert still.code == 0, still

        replayed = api.post("/api/v1/auth/refresh", json={"refresh_token": old_refresh})

    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["success"] is False
    assert replayed.json()["error_code"] == "refresh_token_reused"
    after = cli.run("status")
    assert after.code == 3, after
    assert after.stderr.startswith("Error: ")
    assert "session has ended" in after.stderr
    assert "Traceback" not in after.stderr
    assert "alice" not in after.stdout


def test_logout_ends_the_session_on_the_server(server: KavachServer, cli: Cli) -> None:
    _log_in(server, cli, "carol")
    access, refresh = cli.tokens(server.url)
    with httpx.Client(base_url=server.url, timeout=10) as api:
        bearer = {"Authorization": f"Bearer {access}"}
        assert api.get("/api/v1/auth/me", headers=bearer).json()["data"]["login"] == "carol"

        result = cli.run("logout")

        assert result.code == 0, result
        assert result.stdout.strip() == f"Logged out of {server.url}."
        assert server.url not in cli.credentials()
        assert not cli.credentials_file.exists()
        refused = api.get("/api/v1/auth/me", headers=bearer)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error_code"] == "invalid_token"
        dead_refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert dead_refresh.status_code == 401, dead_refresh.text

    status = cli.run("status")
    assert status.code == 3, status
    assert "not logged in" in status.stderr
    again = cli.run("logout")
    assert again.code == 0, again
    assert again.stdout.strip() == f"Not logged in to {server.url}."

    assert server.unclean_exit(server.stop()) is None
    unreachable = cli.run("info")
    assert unreachable.code == 4, unreachable
    assert unreachable.stderr.startswith(f"Error: cannot reach {server.url}")
