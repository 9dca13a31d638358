"""Shared fixtures: settings and an in-process app on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from kavach.server.app import create_app
from kavach.server.crypto.keys import KeyMaterial
from kavach.server.datadir import private_data_dir
from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import migrate
from kavach.server.db.registry import metadata
from kavach.server.runtime import Runtime
from kavach.server.settings import AuthSettings, DatabaseSettings, KeySettings, Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "KAVACH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
# Server logs the end-to-end leak scan read, and their lines (see tests/e2e/conftest.py).
LOG_SCANS = {"servers": 0, "lines": 0}


def random_keys() -> KeyMaterial:
    """Return three fresh keys for a test server."""
    return KeyMaterial(
        jwt_signing_key=secrets.token_bytes(32),
        secret_encryption_key=secrets.token_bytes(32),
        provider_credential_key=secrets.token_bytes(32),
        generated=False,
    )


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
async def postgres_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Create a throwaway PostgreSQL database for this test run and drop it afterwards."""
    # Each xdist worker has its own (gw0, gw1, …).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"kavach_test_{worker}_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it or set "
            "KAVACH_TEST_POSTGRES_URL. Run `make test-sqlite` for the SQLite half only."
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        marks = request.config.option.markexpr or ""
        if "faults" not in marks.replace("not faults", ""):
            # Only the fault tests (which restart PostgreSQL) need a commit on disk before its
            # answer; every other test is spared that wait (about 3 ms a commit here).
            await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        yield _with_database(POSTGRES_ADMIN_URL, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# Tests log many users in from one address; rate-limit tests override these.
_GENEROUS_LIMITS = {
    "rate_limit_device_code": "10000/minute",
    "rate_limit_device_token": "10000/minute",
    "rate_limit_device_approve": "10000/minute",
    "rate_limit_refresh": "10000/minute",
    "rate_limit_oidc_login": "10000/minute",
    "rate_limit_oidc_token": "10000/minute",
}


def make_settings(data_dir: Path, database_url: str | None, **auth: object) -> Settings:
    """Build settings for a test server without reading the environment's KAVACH_* values."""
    return Settings(
        data_dir=data_dir,
        log_json=True,
        # Its polls would show in tests that count statements; webhook tests turn it on.
        webhook_dispatcher_enabled=False,
        db=DatabaseSettings(database_url=database_url, db_pool_size=5),
        keys=KeySettings(),
        auth=AuthSettings(**{**_GENEROUS_LIMITS, **auth}),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite database per test run; each `server` on SQLite starts on a copy.

    Copying the file takes a tenth of the time migrating a new one does.
    """
    settings = make_settings(tmp_path_factory.mktemp("sqlite-template") / "data", None)
    engine = create_engine(settings)
    try:
        await migrate(engine, settings)
    finally:
        await engine.dispose()
    database = settings.data_dir / "kavach.db"
    # The last connection closed folded the write-ahead log into the file: it is complete.
    assert not database.with_name("kavach.db-wal").exists()
    return database


def copy_sqlite_template(template: Path, data_dir: Path) -> None:
    """Put a copy of the migrated template where a server on `data_dir` keeps its database."""
    shutil.copy(template, private_data_dir(data_dir) / "kavach.db")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name the database backend a test runs on."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """Return the database URL for the backend (None: SQLite in the data directory)."""
    if backend == "sqlite":
        return None
    # Requested lazily so SQLite-only runs never need PostgreSQL.
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database_template(backend: str, request: pytest.FixtureRequest) -> Path | None:
    """Return the migrated SQLite file a server on SQLite starts from (None: PostgreSQL)."""
    if backend != "sqlite":
        return None
    template: Path = request.getfixturevalue("sqlite_template")
    return template


@dataclass
class InProcessServer:
    """An app running in-process, with a client and direct access to its runtime."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        """Return the running app's runtime."""
        runtime: Runtime = self.app.state.runtime
        return runtime


async def truncate_all(runtime: Runtime) -> None:
    """Empty every table of the shared PostgreSQL test database (SQLite starts empty)."""
    if runtime.engine.dialect.name != "postgresql":
        return
    # The access epoch is the server's bookkeeping, not data: its one row must stay.
    tables = [t for t in reversed(metadata.sorted_tables) if t.name != "access_epoch"]
    async with runtime.engine.begin() as conn:
        # DELETE, referencing tables first: on tables this small it takes a fraction of what
        # TRUNCATE does, which gives every table new files.
        for table in tables:
            await conn.execute(table.delete())
        # As TRUNCATE … RESTART IDENTITY would: every sequence starts over.
        await conn.execute(
            text(
                "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                "JOIN pg_class c ON c.oid = s.seqrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace"
            )
        )


# What would make the CLI sign in as a workload by itself (a test run inside a GitHub
# Actions job allowed to request ID tokens, say): tests that want it set it.
WORKLOAD_VARIABLES = (
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "KAVACH_OIDC_TOKEN",
    "KAVACH_OIDC_TOKEN_FILE",
)


@pytest.fixture(autouse=True)
def _no_workload_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the runner's own workload credentials out of every test."""
    for name in WORKLOAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def auth_overrides() -> dict[str, object]:
    """Auth settings a test module wants changed (override this fixture)."""
    return {}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Top-level settings a test module wants changed (override this fixture)."""
    return {}


@pytest.fixture
async def server(
    tmp_path: Path,
    database_url: str | None,
    database_template: Path | None,
    auth_overrides: dict[str, object],
    settings_overrides: dict[str, object],
) -> AsyncIterator[InProcessServer]:
    """Start the app in-process on the chosen backend, with clean tables."""
    settings = make_settings(tmp_path / "data", database_url, **auth_overrides).model_copy(
        update=settings_overrides
    )
    if database_template is not None:
        copy_sqlite_template(database_template, settings.data_dir)
    app = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        in_process = InProcessServer(
            app=app,
            client=httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
                base_url="http://127.0.0.1:8080",
            ),
        )
        await truncate_all(in_process.runtime)
        async with in_process.client:
            yield in_process


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker, hand this worker's counts to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["log_scans"] = dict(LOG_SCANS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller, add up what each worker's leak scan read."""
    for key, value in getattr(node, "workeroutput", {}).get("log_scans", {}).items():
        LOG_SCANS[key] += value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how much server logging the leak scan read."""
    if LOG_SCANS["servers"]:
        terminalreporter.write_line(
            f"log hygiene: scanned {LOG_SCANS['lines']} log lines of {LOG_SCANS['servers']} "
            "servers for credentials"
        )
