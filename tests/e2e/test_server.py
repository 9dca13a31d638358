"""`kavach server start` and `kavach server migrate` as an operator runs them."""

from __future__ import annotations

import secrets
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from kavach.server.db.migrate import alembic_config
from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.harness import (
    HOST,
    START_TIMEOUT,
    Launcher,
    ServerFactory,
    clean_environ,
    free_port,
    kavach_command,
    password_is_ignored,
)

pytestmark = pytest.mark.e2e


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _head_revisions() -> list[str]:
    return sorted(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_start_reports_where_it_listens_and_keeps_its_files_private(
    start_server: ServerFactory, backend: str
) -> None:
    password = None
    if backend == "postgresql" and password_is_ignored():
        # Trust authentication: a password in the URL is harmless, and must never be shown.
        password = f"pw-{secrets.token_hex(12)}"
    server = start_server(database_password=password)
    lines = server.stdout().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"listening on http://{HOST}:{server.port} " in line
    if backend == "sqlite":
        database_file = server.data_dir / "kavach.db"
        described = f"SQLite at {database_file}"
        assert database_file.exists()
        for path in server.data_dir.glob("kavach.db*"):
            assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
    else:
        url = make_url(server.database_url or "")
        described = f"PostgreSQL at {url.host}:{url.port or 5432}/{server.database_name}"
        assert "postgresql://" not in line
        assert "@" not in line, "the start-up line shows the database credentials"
        assert url.password == password
        assert not list(server.data_dir.glob("*.db"))
    assert f"({described}, development mode" in line
    assert _mode(server.data_dir) == 0o700
    assert _mode(server.data_dir / "keys.json") == 0o600
    for key in ("jwt_signing_key", "secret_encryption_key", "provider_credential_key"):
        assert key in (server.data_dir / "keys.json").read_text(encoding="utf-8")

    migrated = server.admin("migrate")

    heads = _head_revisions()
    assert migrated.code == 0, migrated
    assert migrated.stdout.strip() == f"{described} is at revision {', '.join(heads)} (head)"
    # Migrating while the server runs must leave it serving.
    assert server.process.poll() is None
    if password:
        assert password not in migrated.stdout + migrated.stderr
        assert password not in server.stdout() + server.stderr()


def test_production_mode_refuses_an_unsafe_configuration(tmp_path: Path, backend: str) -> None:
    data_dir = tmp_path / "data"
    env = clean_environ(KAVACH_MODE="production", KAVACH_DATA_DIR=str(data_dir))
    if backend == "postgresql":
        # PostgreSQL and an explicitly enabled local provider, but no configured keys.
        env |= {"KAVACH_DATABASE_URL": POSTGRES_ADMIN_URL, "KAVACH_ENABLE_LOCAL_IDP": "true"}
        expected = ["production mode needs explicit keys", "KAVACH_JWT_SIGNING_KEY"]
    else:
        expected = ["refusing to start in production mode", "SQLite"]
    command = [*kavach_command(), "server", "start", "--host", HOST, "--port", str(free_port())]
    try:
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started in production mode with an unsafe configuration")

    assert done.returncode == 1, done
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("Error: ")
    for words in expected:
        assert words in errors[0]
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stdout
    assert not (data_dir / "keys.json").exists(), "keys were generated in production mode"


def test_start_says_listening_once_it_is_and_logs_text_when_asked(
    launch: Launcher, tmp_path: Path
) -> None:
    env = clean_environ(KAVACH_DATA_DIR=str(tmp_path / "data"))
    server = launch(tmp_path / "server", env, wait=False, args=("--log-format", "console"))
    deadline = time.monotonic() + START_TIMEOUT
    while "listening" not in server.stdout():
        assert server.process.poll() is None, server.stderr()
        assert time.monotonic() < deadline, f"never said it listens:\n{server.stderr()}"
        time.sleep(0.01)
    # Said: so the socket takes connections now, at the first try, and the app answers.
    with socket.create_connection((HOST, server.port), timeout=2):
        pass
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    (line,) = server.stdout().splitlines()
    assert f"listening on http://{HOST}:{server.port} (SQLite at" in line
    # Asked for console text: readable lines, not JSON, though stderr is a file here. The
    # request's line is written once the answer has gone out: wait for it a moment.
    deadline = time.monotonic() + 10
    while "route=/healthz" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    logged = server.stderr()
    assert "Application startup complete." in logged
    assert "[info" in logged and "route=/healthz" in logged
    assert not any(line.startswith("{") for line in logged.splitlines())
