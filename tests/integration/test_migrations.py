"""Migrations: the same revisions on both databases, safe when instances start at once."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import (
    alembic_config,
    migrate,
    migration_state,
    without_foreign_keys,
)
from kavach.server.db.registry import metadata
from kavach.server.errors import ConfigurationError
from tests.conftest import POSTGRES_ADMIN_URL, InProcessServer, make_settings
from tests.integration.test_access_cache import _setup
from tests.integration.test_resources import user

_MIGRATE = "from kavach.server.admin import run_migrations; print(run_migrations()[1].current)"


async def _migrate_in_processes(env: dict[str, str], count: int) -> list[tuple[int, str]]:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = await process.communicate()
        assert process.returncode is not None
        results.append((process.returncode, out.decode() + err.decode()))
    return results


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
    env.update(extra)
    return env


async def test_concurrent_first_starts_on_sqlite_all_succeed(tmp_path: Path) -> None:
    results = await _migrate_in_processes(_env(KAVACH_DATA_DIR=str(tmp_path)), 4)
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    head = tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert all(str(head) in out for _, out in results)


async def test_concurrent_first_starts_on_postgresql_all_succeed(tmp_path: Path) -> None:
    name = f"kavach_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{name}"
    try:
        results = await _migrate_in_processes(
            _env(KAVACH_DATA_DIR=str(tmp_path), KAVACH_DATABASE_URL=url), 4
        )
        assert [code for code, _ in results] == [0, 0, 0, 0], results
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_create_exactly_the_models_tables(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = make_settings(tmp_path, database_url)
    engine = create_engine(settings)
    try:
        await migrate(engine, settings)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            state = await migration_state(conn)
            drift = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        assert drift == [], "models and migrations disagree: add a migration"
        assert tables - {"alembic_version"} == set(metadata.tables)
        assert state.at_head
        # A second run is a no-op.
        assert (await migrate(engine, settings)).current == state.current
    finally:
        await engine.dispose()


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade to `revision`, with SQLite's foreign keys off as migrate() has them."""
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            await connection.run_sync(without_foreign_keys)
        await connection.run_sync(run)
        await connection.commit()
        if sqlite:
            await connection.invalidate()


async def _scalars(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql))).all())


async def test_data_keys_move_to_versions_and_back_losing_nothing(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    base = tree["secrets"]
    await alice.call("POST", f"{base}/versions", {"message": "m", "unset": ["DB_PASSWORD"]}, 201)
    await alice.call("POST", f"{base}/versions", {"message": "m", "set": {"A": "1", "B": "2"}}, 201)
    engine, settings = server.runtime.engine, server.runtime.settings

    await _downgrade(engine, "0009")
    # Every secret is still there (no cascade from copying its version's table) with its key.
    assert await _scalars(engine, "SELECT COUNT(*), COUNT(data_key_id) FROM secrets") == [(3, 3)]

    await migrate(engine, settings)
    keyed = "SELECT seq, data_key_id IS NOT NULL FROM secret_versions ORDER BY seq"
    assert await _scalars(engine, keyed) == [(1, True), (2, False), (3, True)]
    versions = await alice.call("GET", f"{base}/versions", status=200)
    assert versions["next"] is None
    read = [
        (await alice.call("GET", f"{base}?version={v['id']}", status=200))["secrets"]
        for v in sorted(versions["items"], key=lambda v: v["seq"])
    ]
    assert read == [{"DB_PASSWORD": "hunter2"}, {}, {"A": "1", "B": "2"}]


async def test_a_version_sealed_with_two_data_keys_stops_the_migration(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _setup(alice)
    base = tree["secrets"]
    await alice.call("POST", f"{base}/versions", {"message": "m", "set": {"A": "1"}}, 201)
    other = await alice.call(
        "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "dev"}, 201
    )
    await alice.call(
        "POST",
        f"/environments/{other['id']}/secrets/versions",
        {"message": "m", "set": {"X": "1"}},
        201,
    )
    engine, settings = server.runtime.engine, server.runtime.settings
    await _downgrade(engine, "0009")
    # Secret A's row names the other environment's data key: not what any commit writes.
    mixed = (
        "UPDATE secrets SET data_key_id = (SELECT d.id FROM data_keys AS d"
        " JOIN environments AS e ON e.id = d.environment_id WHERE e.name = 'dev')"
        " WHERE name = 'A'"
    )
    async with engine.begin() as connection:
        await connection.execute(text(mixed))
    try:
        with pytest.raises(RuntimeError, match="sealed with different data keys"):
            await migrate(engine, settings)
        async with engine.connect() as connection:
            assert (await migration_state(connection)).current == ("0009",)
    finally:  # the database is shared with later tests: leave it whole and at head
        async with engine.begin() as connection:
            await connection.execute(text(mixed.replace("'dev'", "'prod'")))
        await migrate(engine, settings)


async def test_touching_a_session_expiry_moves_the_epoch_only_before_0011(
    server: InProcessServer,
) -> None:
    await user(server, "alice")
    engine, settings = server.runtime.engine, server.runtime.settings
    later = "UPDATE login_sessions SET expires_at = expires_at"
    epoch = "SELECT value FROM access_epoch"

    async def moved_by_touching_the_expiry() -> bool:
        (before,) = await _scalars(engine, epoch)
        async with engine.begin() as connection:
            await connection.execute(text(later))
        (after,) = await _scalars(engine, epoch)
        return bool(after[0] > before[0])

    assert await moved_by_touching_the_expiry() is False
    await _downgrade(engine, "0010")
    try:
        assert await moved_by_touching_the_expiry() is True
    finally:  # the database is shared with later tests: leave it at head
        await migrate(engine, settings)
    assert await moved_by_touching_the_expiry() is False


async def test_a_database_a_newer_release_migrated_is_refused_and_not_ready(
    server: InProcessServer,
) -> None:
    engine, settings = server.runtime.engine, server.runtime.settings
    (head,) = (await _scalars(engine, "SELECT version_num FROM alembic_version"))[0]
    newer = "UPDATE alembic_version SET version_num = :revision"
    async with engine.begin() as connection:
        await connection.execute(text(newer), {"revision": "9999"})
    try:
        with pytest.raises(ConfigurationError, match="revision 9999, newer than this release"):
            await migrate(engine, settings)
        detailed = await server.client.get("/healthz/detailed")
        assert detailed.status_code == 503
        assert detailed.json()["migrations"]["newer_than_code"] is True
    finally:  # the database is shared with later tests: leave it at head
        async with engine.begin() as connection:
            await connection.execute(text(newer), {"revision": head})
    assert (await migrate(engine, settings)).current == (head,)
    assert (await server.client.get("/healthz/detailed")).json()["migrations"] == {
        "current": [head],
        "head": [head],
        "at_head": True,
        "newer_than_code": False,
    }
