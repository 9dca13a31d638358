"""Create the async engine and session factory for SQLite or PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from kavach.server.datadir import private_data_dir
from kavach.server.metrics.pool import MeasuredQueuePool
from kavach.server.settings import DatabaseSettings, Settings

AUTOCOMMIT = "AUTOCOMMIT"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver so _sqlite_begin decides how BEGIN looks.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def outside_transaction(connection: Connection) -> bool:
    """Say whether a connection runs each statement on its own (see read_only)."""
    return connection.get_execution_options().get("isolation_level") == AUTOCOMMIT


def _sqlite_begin(connection: Connection) -> None:
    if outside_transaction(connection):
        return  # a read-only session: each statement is its own transaction
    # IMMEDIATE takes SQLite's single write lock up front, so a transaction that reads and
    # then writes can never fail with SQLITE_BUSY_SNAPSHOT: concurrent transactions queue
    # (busy_timeout) instead. SQLite thus runs one transaction at a time; PostgreSQL is the
    # choice for concurrency.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private_file(path: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does (its -wal and -shm files copy the mode)."""
    if path and path != ":memory:":
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def server_settings(db: DatabaseSettings) -> dict[str, str]:
    """Return the settings every PostgreSQL connection of this server starts with."""
    found = {"application_name": "kavach"}
    if db.db_statement_timeout_ms:
        found["statement_timeout"] = str(db.db_statement_timeout_ms)
    return found


def create_engine(settings: Settings, *, measured: bool = False) -> AsyncEngine:
    """Build the engine the settings describe; SQLite's directory is created if needed.

    `measured` puts the connections in a pool that can report its use (see metrics.pool).
    """
    url = settings.database_url
    pool: dict[str, Any] = {"poolclass": MeasuredQueuePool} if measured else {}
    if settings.is_sqlite:
        private_data_dir(settings.data_dir)
        _create_private_file(make_url(url).database)
        engine = create_async_engine(url, connect_args={"timeout": 10}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    db = settings.db
    return create_async_engine(
        url,
        pool_size=db.db_pool_size,
        max_overflow=db.db_max_overflow,
        pool_timeout=db.db_pool_timeout,
        pool_pre_ping=db.db_pool_pre_ping,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings(db), "timeout": db.db_pool_timeout},
        **pool,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """Return the engine on the same pool for requests that only read: no transaction at all.

    Each statement sees what was committed before it, as under READ COMMITTED, but without
    BEGIN and COMMIT round trips, and on SQLite without taking the write lock.
    """
    return engine.execution_options(isolation_level=AUTOCOMMIT)


def describe_database(settings: Settings) -> str:
    """Describe the database for humans without revealing a password."""
    url = make_url(settings.database_url)
    if settings.is_sqlite:
        return f"SQLite at {url.database}"
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL at {host}/{url.database}"
