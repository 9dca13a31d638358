"""Restore a backup into an empty database: exact rows, at the backup's revision, then head."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kavach.server.backup.archive import KeyIds, Manifest, Reader, TableEntry
from kavach.server.backup.columns import decode_row, typed_table
from kavach.server.backup.errors import KeysMissing, NotABackup, TargetNotEmpty
from kavach.server.backup.revisions import check_known
from kavach.server.backup.snapshot import BOOKKEEPING, Layout, read_layout
from kavach.server.db.migrate import migrate
from kavach.server.settings import Settings

_CHUNK = 500
_KEY_NAMES = {
    "secret_encryption": "secret-encryption key (KAVACH_SECRET_ENCRYPTION_KEY or _OLD_KEYS)",
    "provider_credential": "provider-credential key (KAVACH_PROVIDER_CREDENTIAL_KEY)",
    "audit": "audit key (derived from KAVACH_JWT_SIGNING_KEY)",
}


def check_restorable(manifest: Manifest, held: KeyIds) -> None:
    """Refuse a backup from a newer Kavach, or one whose keys this server lacks."""
    check_known(manifest.schema_revision, what="the backup")
    missing = manifest.keys.missing_from(held)
    if missing:
        named = "; ".join(f"{_KEY_NAMES[kind]}: {', '.join(ids)}" for kind, ids in missing.items())
        raise KeysMissing(
            f"this server's keys lack key ids the backup needs ({named}); configure the keys "
            "of the server the backup was taken from, then restore again"
        )


async def occupied_tables(connection: AsyncConnection) -> list[str]:
    """Return the tables that hold any row, bookkeeping aside."""
    names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    found = []
    for name in sorted(set(names) - BOOKKEEPING):
        query = sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)
        if await connection.scalar(query) is not None:
            found.append(name)
    return found


async def _refuse_occupied(connection: AsyncConnection) -> None:
    occupied = await occupied_tables(connection)
    if occupied:
        raise TargetNotEmpty(
            f"the database already holds data (in {', '.join(occupied)}); restore only into "
            "an empty database"
        )


def _check_layout(manifest: Manifest, layouts: list[Layout]) -> None:
    """Refuse a backup whose tables are not those of its own schema revision."""
    expected = {layout.name: [name for name, _ in layout.columns] for layout in layouts}
    stored = {entry.name: [name for name, _ in entry.columns] for entry in manifest.tables}
    for name in sorted(set(expected) | set(stored)):
        if sorted(expected.get(name, [])) != sorted(stored.get(name, [])):
            raise NotABackup(
                f"the backup's table {name} does not match schema revision "
                f"{manifest.schema_revision}"
            )


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(rows, _CHUNK)):
        yield chunk


async def _insert(connection: AsyncConnection, reader: Reader, entry: TableEntry) -> None:
    target = typed_table(entry.name, entry.columns)
    rows = (decode_row(entry.name, entry.columns, row) for row in reader.rows(entry))
    for chunk in _chunks(rows):
        await connection.execute(sa.insert(target), chunk)


async def _reset_sequences(connection: AsyncConnection, entries: list[TableEntry]) -> None:
    """Move PostgreSQL sequences past the restored ids, so new rows get fresh ones."""
    for entry in entries:
        for column, kind in entry.columns:
            if kind != "int":
                continue
            sequence = await connection.scalar(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": entry.name, "column": column},
            )
            if sequence is None:
                continue
            highest = await connection.scalar(
                sa.select(sa.func.max(sa.column(column))).select_from(sa.table(entry.name))
            )
            await connection.execute(
                sa.text("SELECT setval(:sequence, :value, :called)"),
                {"sequence": sequence, "value": highest or 1, "called": highest is not None},
            )


async def _load(engine: AsyncEngine, reader: Reader) -> None:
    """Insert every row in one transaction: all of the backup or nothing."""
    manifest = reader.manifest
    async with engine.begin() as connection:
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:
            await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
        # Checked again inside the transaction that writes (SQLite: under its write lock).
        await _refuse_occupied(connection)
        _check_layout(manifest, await connection.run_sync(read_layout))
        for entry in manifest.tables:
            await _insert(connection, reader, entry)
        # Inserting role bindings moved the access epoch already (its triggers); move it once
        # more in case there were none, so every running instance drops what it cached.
        if await connection.run_sync(lambda sync: sa.inspect(sync).has_table("access_epoch")):
            await connection.execute(sa.text("UPDATE access_epoch SET value = value + 1"))
        if postgresql:
            await _reset_sequences(connection, manifest.tables)


async def restore(engine: AsyncEngine, settings: Settings, reader: Reader, held: KeyIds) -> None:
    """Restore into an empty database at the backup's revision, then upgrade to head."""
    manifest = reader.manifest
    check_restorable(manifest, held)
    async with engine.connect() as connection:
        await _refuse_occupied(connection)
    await migrate(engine, settings, to=manifest.schema_revision)
    await _load(engine, reader)
    await migrate(engine, settings)
