"""`logout`, `status`, `version`, `info`, and how failures become exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from kavach import __version__
from kavach.cli.app import Runtime
from kavach.cli.config import ActiveContext, Config, save_config
from kavach.cli.credentials import Credentials, CredentialStore

from .conftest import SERVER, Invoke, make_credentials
from .fake_api import FakeApi, failure


def test_logout_ends_the_server_session_and_forgets_credentials(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, home: Path
) -> None:
    result = invoke(["logout"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Logged out of {SERVER}.\n"
    logout = api.calls[-1]
    assert (logout.method, logout.path) == ("POST", "/api/v1/auth/logout")
    assert logout.authorization == f"Bearer {logged_in.access_token}"
    assert logged_in.access_token not in api.valid_access
    assert CredentialStore(home).load(SERVER) is None


def test_logout_forgets_credentials_even_when_the_server_is_down(
    logged_in: Credentials, invoke: Invoke, home: Path
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    result = invoke(["logout"], runtime=Runtime(transport=httpx.MockTransport(down)))
    assert result.exit_code == 0
    assert "Warning: the server did not end the session: cannot reach" in result.stderr
    assert CredentialStore(home).load(SERVER) is None


def test_logout_when_not_logged_in_is_fine(api: FakeApi, invoke: Invoke, home: Path) -> None:
    assert invoke(["logout"]).stdout == "Not logged in.\n"
    save_config(home, Config(server=SERVER))
    result = invoke(["logout"])
    assert result.exit_code == 0
    assert result.stdout == f"Not logged in to {SERVER}.\n"
    assert api.calls == []


def test_status_shows_user_expiry_and_context_but_no_token(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, home: Path
) -> None:
    save_config(home, Config(server=SERVER, context=ActiveContext("acme", "web", None)))
    result = invoke(["status"])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"Server: {SERVER}" in lines
    assert "User: alice (Alice Example)" in lines
    assert "Organization: acme (from the active context (config.yaml))" in lines
    assert "Secret group: web (from the active context (config.yaml))" in lines
    assert "Environment: -" in lines
    assert any(line.startswith("Access token expires") and "(in 1" in line for line in lines)
    assert logged_in.access_token not in result.output
    assert logged_in.refresh_token not in result.output


def test_status_json(api: FakeApi, invoke: Invoke, logged_in: Credentials) -> None:
    for args in (["status", "--json"], ["--json", "status"]):
        result = invoke(args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["server"] == SERVER
        assert data["user"]["login"] == "alice"
        assert data["token"] == {
            "source": "stored",
            "expires_at": logged_in.expires_at.isoformat(),
            "expired": False,
        }
        assert data["context"] == {
            "organization": None,
            "secret_group": None,
            "environment": None,
        }
        assert logged_in.access_token not in result.stdout


def test_status_refreshes_an_expired_token(
    api: FakeApi, invoke: Invoke, store: CredentialStore, home: Path
) -> None:
    access, refresh = api.issue()
    api.expire(access)
    store.save(SERVER, make_credentials(access, refresh, expires_in=-60))
    save_config(home, Config(server=SERVER))

    result = invoke(["status", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["token"]["expired"] is False
    assert api.count("/api/v1/auth/refresh") == 1


def test_status_with_kavach_token(
    api: FakeApi, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, _ = api.issue()
    monkeypatch.setenv("KAVACH_TOKEN", access)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    result = invoke(["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["token"] == {
        "source": "environment",
        "expires_at": None,
        "expired": None,
    }
    assert access not in result.stdout


def test_status_when_not_logged_in_exits_3(api: FakeApi, invoke: Invoke, home: Path) -> None:
    result = invoke(["status"])
    assert result.exit_code == 3
    assert result.stderr == "Error: not logged in: no server set; run `kavach login --server URL`\n"
    save_config(home, Config(server=SERVER))
    result = invoke(["status"])
    assert result.exit_code == 3
    assert result.stderr == f"Error: not logged in to {SERVER}; run `kavach login`\n"
    assert api.calls == []


def test_version(invoke: Invoke) -> None:
    assert invoke(["version", "--short"]).stdout == f"{__version__}\n"
    assert invoke(["version"]).stdout.startswith(f"kavach {__version__} (Python 3.")
    assert json.loads(invoke(["version", "--json"]).stdout)["version"] == __version__


def test_info(api: FakeApi, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    result = invoke(["info"])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == [
        f"Server: {SERVER}",
        "Server version: 0.1.0",
        "Identity provider: local",
        "Mode: development",
        "Health: ok",
    ]
    data = json.loads(invoke(["info", "--json"]).stdout)
    assert data["health"] == {"ok": True, "status": "ok", "http_status": 200}
    assert all(call.authorization is None for call in api.calls)


def test_info_on_an_unhealthy_server_exits_2(
    api: FakeApi, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.healthy = False
    result = invoke(["--server", SERVER, "info", "--json"])
    assert result.exit_code == 4
    assert json.loads(result.stdout)["health"] == {
        "ok": False,
        "status": "degraded",
        "http_status": 503,
    }


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [(403, "forbidden", 3), (401, "invalid_token", 3), (500, "internal_error", 4)],
)
def test_server_errors_print_one_line_and_map_to_exit_codes(
    logged_in: Credentials, invoke: Invoke, status: int, code: str, exit_code: int
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return failure(status, code, "the server says no")

    result = invoke(["status"], runtime=Runtime(transport=httpx.MockTransport(answer)))
    assert result.exit_code == exit_code
    assert result.stderr == f"Error: the server says no ({code})\n"
    assert result.stdout == ""


def test_network_errors_exit_2(invoke: Invoke, logged_in: Credentials) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out")

    result = invoke(["status"], runtime=Runtime(transport=httpx.MockTransport(down)))
    assert result.exit_code == 4
    assert result.stderr == f"Error: {SERVER} did not answer in time\n"


def test_verbose_adds_the_traceback(invoke: Invoke, logged_in: Credentials) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    runtime = Runtime(transport=httpx.MockTransport(down))
    quiet = invoke(["status"], runtime=runtime)
    loud = invoke(["--verbose", "status"], runtime=runtime)
    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.splitlines()[-1] == f"Error: cannot reach {SERVER}: refused"
    assert logged_in.access_token not in loud.stderr


def test_an_unexpected_exception_is_one_line_and_exit_1(
    invoke: Invoke, logged_in: Credentials
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise ZeroDivisionError("oops")

    result = invoke(["status"], runtime=Runtime(transport=httpx.MockTransport(broken)))
    assert result.exit_code == 1
    assert result.stderr == "Error: unexpected ZeroDivisionError: oops\n"


@pytest.mark.parametrize("args", [["no-such-command"], ["status", "--bogus"], ["--server"], []])
def test_usage_errors_exit_2(invoke: Invoke, args: list[str]) -> None:
    assert invoke(args).exit_code == 2


def test_invalid_server_url_is_a_local_error(invoke: Invoke) -> None:
    result = invoke(["--server", "kavach.test", "info"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: invalid server URL")
