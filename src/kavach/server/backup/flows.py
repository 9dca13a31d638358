"""Take a backup to a file, or restore one, against the database the settings name."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from kavach import __version__
from kavach.server.access import Actor, RequestOrigin
from kavach.server.audit import chain as audit_chain
from kavach.server.audit import service as audit
from kavach.server.backup.archive import (
    FORMAT,
    FORMAT_VERSION,
    Manifest,
    Reader,
    check_writable,
    write_archive,
)
from kavach.server.backup.errors import DatabaseFailed, NoDatabase
from kavach.server.backup.keyuse import held_key_ids
from kavach.server.backup.restore import restore
from kavach.server.backup.snapshot import take
from kavach.server.crypto.keys import KeyMaterial
from kavach.server.db.engine import create_engine, create_sessionmaker, describe_database
from kavach.server.settings import Settings


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Open the server's database; its failures name it, never a statement or a value."""
    engine = create_engine(settings)
    try:
        yield engine
    except (DBAPIError, OSError) as error:
        # A DBAPIError's text holds the statement and its parameters: ciphertexts, hashes.
        cause = type(getattr(error, "orig", None) or error).__name__
        raise DatabaseFailed(
            f"{describe_database(settings)} failed or refused the work ({cause})"
        ) from None
    finally:
        await engine.dispose()


def _require_database(settings: Settings) -> None:
    """Refuse to back up a SQLite database that does not exist (opening it would create it)."""
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if not database or not Path(database).is_file():
            raise NoDatabase(f"there is no database at {database}; there is nothing to back up")


async def _record(engine: AsyncEngine, keys: KeyMaterial, actor: Actor, **details: Any) -> None:
    """Record the backup or restore on the server's audit chain."""
    sessions = create_sessionmaker(engine)
    audit_chain.attach(sessions, audit_chain.AuditKey.derive(keys))
    async with sessions() as session, session.begin():
        await audit.record(session, actor=actor, origin=RequestOrigin(), **details)


async def backup_to(
    path: Path, *, settings: Settings, keys: KeyMaterial, actor: Actor, force: bool = False
) -> Manifest:
    """Write a consistent backup of the database to `path` (0600); return its manifest."""
    check_writable(path, force=force)
    _require_database(settings)
    async with _database(settings) as engine:
        created_at = datetime.now(UTC)
        found = await take(engine, path.parent)
    try:
        needed, unavailable, unreadable = found.keys.split(keys)
        manifest = Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            kavach_version=__version__,
            schema_revision=found.revision,
            created_at=created_at,
            database="sqlite" if settings.is_sqlite else "postgresql",
            tables=[table.entry(i + 1) for i, table in enumerate(found.tables)],
            keys=needed,
            keys_unavailable=unavailable,
            unreadable_provider_credentials=unreadable,
        )
        write_archive(path, manifest, found.tables, force=force)
    finally:
        for table in found.tables:
            table.spool.close()
    async with _database(settings) as engine:
        details = {"schema_revision": found.revision, "created_at": created_at.isoformat()}
        await _record(engine, keys, actor, action="server.backup", details=details)
    return manifest


async def restore_from(
    path: Path, *, settings: Settings, keys: KeyMaterial, actor: Actor
) -> Manifest:
    """Restore the backup at `path` into the empty database; return its manifest."""
    reader = Reader(path)
    try:
        async with _database(settings) as engine:
            await restore(engine, settings, reader, held_key_ids(keys))
            manifest = reader.manifest
            await _record(
                engine,
                keys,
                actor,
                action="server.restore",
                details={
                    "schema_revision": manifest.schema_revision,
                    "created_at": manifest.created_at.isoformat(),
                    "rows": sum(table.rows for table in manifest.tables),
                },
            )
    finally:
        reader.close()
    return manifest
