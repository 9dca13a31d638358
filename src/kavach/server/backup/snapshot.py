"""Read every table in one consistent transaction, while the server goes on serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kavach.server.backup.archive import TableData, new_table
from kavach.server.backup.columns import Kind, encode_row, kind_of, typed_table
from kavach.server.backup.errors import NoDatabase
from kavach.server.backup.keyuse import KeyUse
from kavach.server.backup.revisions import check_known
from kavach.server.db.engine import AUTOCOMMIT

# The server's own bookkeeping, not data: migrations create and fill these.
BOOKKEEPING = frozenset({"alembic_version", "access_epoch", "sqlite_sequence"})
_FETCH = 1000


@dataclass(frozen=True)
class Layout:
    """A table as the database has it: columns with their kinds, and its primary key."""

    name: str
    columns: list[tuple[str, Kind]]
    key: list[str]


def read_layout(connection: Connection) -> list[Layout]:
    """Return the data tables in the order their foreign keys need (parents first)."""
    reflected = sa.MetaData()
    reflected.reflect(connection)
    layouts = []
    for table in reflected.sorted_tables:
        if table.name in BOOKKEEPING:
            continue
        columns = [(c.name, kind_of(table.name, c.name, c.type)) for c in table.columns]
        key = [c.name for c in table.primary_key.columns]
        layouts.append(Layout(table.name, columns, key))
    return layouts


async def schema_revision(connection: AsyncConnection) -> str | None:
    """Return the database's schema revision (None: it has no Kavach schema)."""
    has_version = await connection.run_sync(
        lambda sync: sa.inspect(sync).has_table("alembic_version")
    )
    if not has_version:
        return None
    found = await connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    return None if found is None else str(found)


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Hold one read-only transaction: every statement in it sees the same committed state."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # As pg_dump: one REPEATABLE READ snapshot; READ ONLY takes no lock writers wait on.
            await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with connection.begin():
                await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
                yield connection
            return
        # SQLite in WAL mode: a deferred BEGIN reads one snapshot and, unlike the server's
        # BEGIN IMMEDIATE, never takes the write lock, so commits go on meanwhile.
        await connection.execution_options(isolation_level=AUTOCOMMIT)
        await connection.exec_driver_sql("BEGIN")
        try:
            yield connection
        finally:
            await connection.exec_driver_sql("ROLLBACK")


@dataclass
class Snapshot:
    """What one consistent read of the database found."""

    revision: str
    tables: list[TableData]
    keys: KeyUse


async def take(engine: AsyncEngine, spool_dir: Path) -> Snapshot:
    """Read every data table in one snapshot, rows in key order, into spooled JSON lines."""
    async with snapshot(engine) as connection:
        revision = await schema_revision(connection)
        if revision is None:
            raise NoDatabase("the database has no Kavach schema; there is nothing to back up")
        check_known(revision, what="the database")
        layouts = await connection.run_sync(read_layout)
        keys = KeyUse()
        tables = []
        for layout in layouts:
            table = new_table(spool_dir, layout.name, layout.columns)
            tables.append(table)
            names = [name for name, _ in layout.columns]
            kinds = [kind for _, kind in layout.columns]
            note = keys.watcher(layout.name, names)
            source = typed_table(layout.name, layout.columns)
            query = sa.select(source).order_by(*(source.c[name] for name in layout.key))
            result = await connection.stream(query.execution_options(yield_per=_FETCH))
            async for row in result:
                if note is not None:
                    note(row)
                table.add(encode_row(kinds, row))
        return Snapshot(revision=revision, tables=tables, keys=keys)
