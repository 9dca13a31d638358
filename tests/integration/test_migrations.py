"""Migrations: the same revisions on both databases, safe when instances start at once."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import alembic_config, migrate, migration_state
from kavach.server.db.registry import metadata
from tests.conftest import POSTGRES_ADMIN_URL, make_settings

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
