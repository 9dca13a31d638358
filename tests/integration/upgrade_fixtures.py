"""Databases left by earlier releases (tests/fixtures/upgrade), loaded into fresh databases.

scripts/upgrade_fixtures.py made them with the old code; see its docstring.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from kavach.server.auth.models import LoginSession, RefreshToken, ServiceToken
from kavach.server.db.base import utcnow
from kavach.server.settings import KeySettings, Settings
from tests.conftest import POSTGRES_ADMIN_URL, make_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade"
REVISIONS = sorted(path.name.removeprefix("r") for path in FIXTURES.glob("r*"))
_CREATE_TABLE = re.compile(r'^CREATE TABLE (?:public\.)?"?(\w+)"?', re.MULTILINE)


@dataclass(frozen=True)
class Fixture:
    """One release's database, as SQL, and what was written into it."""

    revision: str
    commit: str
    sql: str
    manifest: dict[str, Any]

    @property
    def tables(self) -> set[str]:
        """Name the tables the release had (the dump creates them)."""
        return set(_CREATE_TABLE.findall(self.sql)) - {"alembic_version"}


@cache
def _manifest(revision: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"r{revision}" / "manifest.json").read_text())
    return loaded


def fixture(revision: str, backend: str) -> Fixture:
    """Read one release's dump for one backend."""
    manifest = _manifest(revision)
    sql = (FIXTURES / f"r{revision}" / f"{backend}.sql").read_text()
    return Fixture(revision, manifest["commit"], sql, manifest[backend])


def fixture_key_settings() -> KeySettings:
    """Return the test-only keys every fixture was made with."""
    keys = json.loads((FIXTURES / "keys.json").read_text())
    for name in ("jwt_signing_key", "secret_encryption_key", "provider_credential_key"):
        assert len(base64.urlsafe_b64decode(keys[name])) == 32
    return KeySettings(
        jwt_signing_key=SecretStr(keys["jwt_signing_key"]),
        secret_encryption_key=SecretStr(keys["secret_encryption_key"]),
        provider_credential_key=SecretStr(keys["provider_credential_key"]),
    )


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700)  # the server refuses a data directory others can reach


def _load_sqlite(sql: str, data_dir: Path) -> None:
    path = data_dir / "kavach.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(sql)
    path.chmod(0o600)


async def _load_postgresql(sql: str) -> tuple[str, str]:
    name = f"kavach_upgrade_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{name}"
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)  # the dump holds plain statements only
    finally:
        await connection.close()
    return name, url


async def _drop_postgresql(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def loaded(found: Fixture, backend: str, data_dir: Path) -> AsyncIterator[Settings]:
    """Load the fixture into a fresh database; yield settings for it with the fixture's keys."""
    _private_dir(data_dir)
    if backend == "sqlite":
        _load_sqlite(found.sql, data_dir)
        settings = make_settings(data_dir, None)
        yield settings.model_copy(update={"keys": fixture_key_settings()})
        return
    name, url = await _load_postgresql(found.sql)
    try:
        settings = make_settings(data_dir, url)
        yield settings.model_copy(update={"keys": fixture_key_settings()})
    finally:
        await _drop_postgresql(name)


async def renew_expiries(engine: AsyncEngine) -> None:
    """Move the fixture's unexpired-when-made sessions and tokens to expire tomorrow.

    The dumps age in the repository while their sessions and tokens would expire; what is
    tested is that they survive the upgrade, not the calendar.
    """
    tomorrow = utcnow() + timedelta(days=1)
    async with engine.begin() as connection:
        for model in (LoginSession, ServiceToken):
            live = model.revoked_at.is_(None)
            await connection.execute(update(model).where(live).values(expires_at=tomorrow))
        unused = RefreshToken.used_at.is_(None)
        await connection.execute(update(RefreshToken).where(unused).values(expires_at=tomorrow))
