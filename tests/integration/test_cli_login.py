"""`kavach login` against the real app: signed in, it says as whom; a session that ended
starts a new device flow."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kavach.cli.app import Runtime
from kavach.cli.config import Config, save_config
from kavach.cli.credentials import Credentials, CredentialStore
from kavach.cli.errors import ExitCode
from tests.conftest import InProcessServer
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.helpers import bearer, login

URL = "http://127.0.0.1:8080"


@pytest.fixture
def backend() -> str:
    """The CLI's side of a login does not depend on the database: one backend is enough."""
    return "sqlite"


def _stop_waiting(seconds: float) -> None:
    raise KeyboardInterrupt  # the device flow started; nobody will approve it here


async def test_login_says_who_is_signed_in_and_starts_over_once_the_session_ended(
    server: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    for name in ("KAVACH_TOKEN", "KAVACH_SERVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAVACH_HOME", str(home))
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "file")
    tokens = await login(server, "alice")
    CredentialStore(home).save(URL, Credentials.from_token_response(tokens))
    save_config(home, Config(server=URL))
    bridge = LoopBridge(server, asyncio.get_running_loop())
    runtime = Runtime(transport=bridge, sleep=_stop_waiting)

    signed_in = await run_cli("login", runtime=runtime)
    assert signed_in.exit_code == ExitCode.OK, signed_in.output
    assert signed_in.stdout == f"Already logged in as alice on {URL}.\n"

    ended = await server.client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert ended.status_code == 200, ended.text
    started = await run_cli("login", runtime=runtime)
    assert started.exit_code == ExitCode.INTERRUPTED, started.output
    assert f"Your session on {URL} has ended; starting a new login." in started.stderr
    assert "Your one-time code: " in started.stderr
