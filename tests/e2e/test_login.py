"""`kavach login` with the local identity provider: approved on the server or by the user."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kavach import __version__
from tests.e2e.harness import Cli, KavachServer, ServerFactory

# SQLite only: this is the command line's side of logging in; the server's side (device
# codes, approvals, rate limits) runs on both databases in tests/integration/test_device_flow.py.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_approved_headlessly_then_status_and_info(server: KavachServer, cli: Cli) -> None:
    pending = cli.start_login(server.url)
    assert pending.url == f"{server.url}/device?user_code={pending.code}"

    approved = server.approve(pending.code, "alice")
    result = pending.wait()

    assert approved.stdout.strip() == f"Login {pending.code} approved as alice."
    assert result.code == 0, result
    assert result.stdout.strip() == f"Logged in as alice on {server.url}"
    assert _mode(cli.home) == 0o700
    assert _mode(cli.credentials_file) == 0o600
    access, refresh = cli.tokens(server.url)
    assert access and refresh and access != refresh

    status = cli.run("status")
    assert status.code == 0, status
    assert server.url in status.stdout
    assert re.search(r"User: alice\b", status.stdout), status.stdout
    # An ISO time about 15 minutes ahead, described relative to now.
    assert re.search(r"Access token expires: \S+T\S+ \(in 1[45]m\)", status.stdout), status.stdout

    as_json = cli.run("status", "--json")
    assert as_json.code == 0, as_json
    data = json.loads(as_json.stdout)
    assert data["server"] == server.url
    assert data["user"]["login"] == "alice"
    assert data["user"]["provider"] == "local"
    assert data["token"]["source"] == "stored"
    assert data["token"]["expired"] is False
    expires_at = datetime.fromisoformat(data["token"]["expires_at"])
    lifetime = expires_at - datetime.now(UTC)
    assert timedelta(minutes=13) < lifetime <= timedelta(minutes=15), lifetime

    for shown in (result, status, as_json):
        for token in (access, refresh):
            assert token not in shown.stdout and token not in shown.stderr

    info = cli.run_json("info", "--json")
    assert info == {
        "server": server.url,
        "version": __version__,
        "identity_provider": "local",
        "mode": "development",
        "health": {"ok": True, "status": "ok", "http_status": 200},
    }


def test_a_signed_in_user_approves_a_new_login_for_themselves(
    server: KavachServer, cli: Cli, make_cli: Callable[[str], Cli]
) -> None:
    first = cli.start_login(server.url)
    server.approve(first.code, "bob")
    assert first.wait().code == 0
    laptop = make_cli("laptop")
    pending = laptop.start_login(server.url)

    # The page only says how to approve; posting to it, even "from loopback", decides nothing.
    with httpx.Client(timeout=10) as browser:
        page = browser.get(pending.url)
        assert page.status_code == 200, page.text
        assert f"kavach login --approve {pending.code}" in page.text
        form = {"user_code": pending.code, "login": "mallory", "action": "approve"}
        posted = browser.post(
            f"{server.url}/device", data=form, headers={"X-Forwarded-For": "127.0.0.1"}
        )
        assert posted.status_code == 405, posted.text

    approved = cli.run("login", "--approve", pending.code)
    result = pending.wait()

    assert approved.code == 0, approved
    assert approved.stdout.strip() == f"Login {pending.code} approved as bob."
    assert result.code == 0, result
    assert result.stdout.strip() == f"Logged in as bob on {server.url}"
    assert laptop.run_json("status", "--json")["user"]["login"] == "bob"


def test_rate_limits_count_per_peer_whatever_x_forwarded_for_says(
    start_server: ServerFactory,
) -> None:
    server = start_server(rate_limit_device_code="3/minute")
    statuses = [
        httpx.post(
            f"{server.url}/api/v1/auth/device/code",
            json={},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
            timeout=10,
        ).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_denied_login_fails_with_exit_code_3(server: KavachServer, cli: Cli) -> None:
    pending = cli.start_login(server.url)

    denied = server.admin("deny", pending.code)
    result = pending.wait()

    assert denied.code == 0, denied
    assert denied.stdout.strip() == f"Login {pending.code} denied."
    assert result.code == 3, result
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("Error: the login was denied")
    assert "Traceback" not in result.stderr
    assert not cli.credentials_file.exists()
    # The code is used up: approving it now is refused.
    late = server.admin("approve", pending.code, "--user", "mallory")
    assert late.code == 1, late
    assert late.stderr.startswith("Error: ")
    assert cli.run("status", server=server.url).code == 3
