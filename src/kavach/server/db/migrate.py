"""Apply Alembic migrations, serialised so several instances may start at once."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kavach.server.datadir import private_data_dir
from kavach.server.errors import ConfigurationError
from kavach.server.settings import Settings

# An arbitrary constant: the pg_advisory lock id that serialises migrations.
_PG_MIGRATION_LOCK_ID = 0x4B415641


@dataclass(frozen=True)
class MigrationState:
    """Where the database stands against the migrations shipped with this code."""

    current: tuple[str, ...]
    head: tuple[str, ...]
    # Applied revisions this code does not ship: a newer release migrated the database.
    unknown: tuple[str, ...] = ()

    @property
    def at_head(self) -> bool:
        """Say whether the database is fully migrated."""
        return set(self.current) == set(self.head)

    @property
    def newer_than_code(self) -> bool:
        """Say whether a newer release has migrated the database past this code."""
        return bool(self.unknown)


def alembic_config() -> Config:
    """Return the Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", "kavach.server.db:migrations")
    return config


def _refuse_newer(state: MigrationState) -> None:
    """Stop an older release from touching a database a newer one has migrated."""
    if state.newer_than_code:
        raise ConfigurationError(
            f"the database is at revision {', '.join(state.unknown)}, newer than this "
            f"release knows (its latest is {', '.join(state.head)}): a newer release has "
            "upgraded it. Run that release; migrations only go forward, so going back means "
            "restoring the backup taken before the upgrade"
        )


def _is_older(config: Config, revision: str, than: str | None) -> bool:
    if than is None or revision in ("head", than):
        return False
    script = ScriptDirectory.from_config(config)
    return revision in {found.revision for found in script.iterate_revisions(than, "base")}


def _upgrade(connection: Connection, to: str = "head") -> None:
    _refuse_newer(_state(connection))
    config = alembic_config()
    config.attributes["connection"] = connection
    current = MigrationContext.configure(connection).get_current_revision()
    if _is_older(config, to, than=current):
        # Only a restore asks for this, and only of a database it found empty.
        command.downgrade(config, to)
    else:
        command.upgrade(config, to)
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
        if broken is not None:
            raise RuntimeError(f"migrating left a row of {broken[0]} with a broken reference")


def without_foreign_keys(connection: Connection) -> None:
    """Stop SQLite enforcing foreign keys on this connection, before any transaction.

    SQLite alters most tables by copying them, and dropping the old copy with enforcement
    on would delete, by cascade, the rows that reference it. _upgrade checks every
    reference before the migration commits instead.
    """
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA foreign_keys=OFF")
    finally:
        cursor.close()


def _state(connection: Connection) -> MigrationState:
    current = MigrationContext.configure(connection).get_current_heads()
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = tuple(revision for revision in current if revision not in known)
    return MigrationState(current=tuple(current), head=tuple(scripts.get_heads()), unknown=unknown)


async def migration_state(connection: AsyncConnection) -> MigrationState:
    """Read the applied revisions and the shipped head."""
    return await connection.run_sync(_state)


def _file_lock(settings: Settings) -> AbstractContextManager[object]:
    if not settings.is_sqlite:
        return nullcontext()
    lock = private_data_dir(settings.data_dir) / "migrate.lock"
    return FileLock(str(lock), timeout=120, mode=0o600)


async def migrate(engine: AsyncEngine, settings: Settings, to: str = "head") -> MigrationState:
    """Upgrade the database to head (or move it to `to`); concurrent callers wait in turn."""
    with _file_lock(settings):
        async with engine.connect() as connection:
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:
                # Session-level lock: released when this connection returns to the pool.
                await connection.execute(
                    text("SELECT pg_advisory_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID}
                )
            else:
                await connection.run_sync(without_foreign_keys)
            try:
                await connection.run_sync(_upgrade, to)
                await connection.commit()
                return await migration_state(connection)
            except BaseException:
                # An aborted transaction would refuse the unlock below and hide this error.
                await connection.rollback()
                raise
            finally:
                if postgresql:
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_MIGRATION_LOCK_ID}
                    )
                    await connection.commit()
                else:
                    await connection.invalidate()  # enforcement is off: never lend it again


def migrate_blocking(settings: Settings) -> MigrationState:
    """Run migrate() with its own engine, for the CLI."""
    from kavach.server.db.engine import create_engine

    async def _run() -> MigrationState:
        engine = create_engine(settings)
        try:
            return await migrate(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(_run())
