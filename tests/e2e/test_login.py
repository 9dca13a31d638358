"""`kavach login` with the local identity provider, approved headlessly or on the /device page."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kavach import __version__
from tests.e2e.harness import Cli, KavachServer

pytestmark = pytest.mark.e2e

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


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
    assert re.search(r"User\s+alice\b", status.stdout), status.stdout
    # An ISO time about 15 minutes ahead, described relative to now.
    assert re.search(r"Access token expires\s+\S+T\S+ \(in 1[45]m\)", status.stdout), status.stdout

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


def test_login_approved_on_the_device_page(server: KavachServer, cli: Cli) -> None:
    pending = cli.start_login(server.url)

    with httpx.Client(timeout=10) as browser:
        page = browser.get(pending.url)
        assert page.status_code == 200, page.text
        assert f'value="{pending.code}"' in page.text
        csrf = CSRF_FIELD.search(page.text)
        assert csrf is not None, page.text
        form = {
            "csrf_token": csrf.group(1),
            "user_code": pending.code,
            "login": "bob",
            "action": "approve",
        }
        # The same form without the cookie set by the page is refused.
        forged = httpx.post(f"{server.url}/device", data=form, timeout=10)
        assert forged.status_code == 403, forged.text
        decided = browser.post(f"{server.url}/device", data=form)

    assert decided.status_code == 200, decided.text
    assert f"Login {pending.code} approved." in decided.text
    result = pending.wait()
    assert result.code == 0, result
    assert result.stdout.strip() == f"Logged in as bob on {server.url}"
    assert cli.run_json("status", "--json")["user"]["login"] == "bob"


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
