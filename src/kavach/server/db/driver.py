"""Statements run on asyncpg directly, for the few hot paths where SQLAlchemy's layers cost most.

The statements are still written once, in SQLAlchemy, and compiled here to the driver's
SQL; only their execution skips the ORM and the engine. PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from kavach.server.db.engine import server_settings
from kavach.server.errors import DATABASE_UNAVAILABLE, ServiceUnavailable
from kavach.server.logging import get_logger
from kavach.server.settings import Settings

if TYPE_CHECKING:
    from kavach.server.metrics.registry import PoolGauges

log = get_logger(__name__)
_DIALECT = asyncpg_dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
# What the driver raises when the database or the connection fails (not a bug here).
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)

# How long a connection may sit unused before it goes back to asyncpg, which closes it.
_IDLE_SECONDS = 300.0
_LIBPQ_PREFIXES = ("ssl", "target_session_attrs", "passfile", "krbsrvname", "gsslib")


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled to asyncpg's SQL, with its parameters' order and constants."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]

    @classmethod
    def compile(cls, statement: ClauseElement) -> DriverStatement:
        """Compile a SQLAlchemy statement for the driver."""
        compiled = statement.compile(dialect=_DIALECT)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """Return the positional arguments: named values, else the statement's constants."""
        return [values[n] if n in values else self.constants[n] for n in self.names]

    def bound(self, values: Mapping[str, Any]) -> list[Any]:
        """Return the SQL followed by its arguments, as the driver's fetch calls take them."""
        return [self.sql, *self.args(values)]


async def _end_transaction(connection: asyncpg.Connection) -> None:
    """Make a returned connection ready for the next user, without a round trip if it is.

    The statements run here change no session state (no SET, LISTEN or session locks), so
    the driver's default reset, a round trip on every return, has nothing to undo.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class DriverPool:
    """asyncpg's own pool, opened on first use, on the same database as the engine.

    Connections are kept between uses rather than handed back to asyncpg's pool each time:
    its acquire and release (a task, timers and a reset each) cost several times a query.
    One goes back to asyncpg's pool when a caller is waiting there for one, when its user
    failed, when it is inside a transaction (asyncpg resets it), when it has been idle as
    long as asyncpg would keep it, when it is closed, and on close. One asyncpg has already
    taken back (the database ended it) is dropped: asyncpg replaces it.
    """

    def __init__(self, settings: Settings, gauges: PoolGauges | None = None) -> None:
        db = settings.db
        self._gauges = gauges  # None: metrics are off
        url = make_url(settings.database_url)
        # Only what libpq's URLs mean: the driver would send other options as server settings.
        query = {k: v for k, v in url.query.items() if k.startswith(_LIBPQ_PREFIXES)}
        url = url.set(drivername="postgresql", query=query)
        self._dsn = url.render_as_string(hide_password=False)
        self._size = db.db_driver_pool_size
        self._server_settings = server_settings(db)
        self._timeout = db.db_pool_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        # Acquired from the pool and free to lend, each with when it was last given back.
        self._kept: list[tuple[asyncpg.Connection, float]] = []
        self._waiting = 0  # callers waiting in asyncpg's pool
        self._closing = False

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._size,
                    server_settings=self._server_settings,
                    timeout=self._timeout,
                    reset=_end_transaction,
                    max_inactive_connection_lifetime=_IDLE_SECONDS,
                )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Lend a connection; a database failure becomes a 503 (the pool replaces it)."""
        try:
            pool = self._pool or await self._open()
            gauges = self._gauges
            if gauges is None:
                connection = await self._lend(pool)
            else:
                started = time.perf_counter()
                try:
                    connection = await self._lend(pool)
                finally:
                    gauges.observe_wait(time.perf_counter() - started)
                gauges.checked_out()
            failed = True
            try:
                yield connection
                failed = False
            finally:
                await self._take_back(pool, connection, keep=not failed)
                if gauges is not None:
                    gauges.checked_in()
        except (*DRIVER_ERRORS, TimeoutError) as error:
            log.warning("database_unavailable", error=type(error).__name__)
            raise ServiceUnavailable(DATABASE_UNAVAILABLE) from None

    async def _lend(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        while self._kept and not self._closing:
            connection, since = self._kept.pop()
            if _taken_back(connection):
                continue
            if not connection.is_closed() and time.monotonic() - since < _IDLE_SECONDS:
                return connection
            # asyncpg replaces a closed one, and closes one that stays idle.
            await self._release(pool, connection)
        self._waiting += 1
        try:
            # asyncio.timeout rather than the driver's timeout, which runs the wait as a
            # task of its own on this Python.
            async with asyncio.timeout(self._timeout):
                return await pool.acquire()
        finally:
            self._waiting -= 1

    async def _take_back(
        self, pool: asyncpg.Pool, connection: asyncpg.Connection, *, keep: bool
    ) -> None:
        """Keep the connection for the next user, or give it back to asyncpg; never raise.

        Raising here would turn a statement that committed into an error for its caller.
        """
        if _taken_back(connection):
            return
        if keep and not (
            self._waiting
            or self._closing
            or connection.is_closed()
            or connection.is_in_transaction()
        ):
            self._kept.append((connection, time.monotonic()))
        else:
            await self._release(pool, connection)

    async def _release(self, pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
        try:
            await pool.release(connection, timeout=self._timeout)
        except (*DRIVER_ERRORS, TimeoutError) as error:  # asyncpg has dropped the connection
            log.warning("database_connection_dropped", error=type(error).__name__)

    async def close(self) -> None:
        """Close the pool's connections, once those lent out are given back."""
        self._closing = True
        if self._pool is not None:
            kept, self._kept = self._kept, []
            for connection, _ in kept:
                await self._release(self._pool, connection)
            await self._pool.close()


def _taken_back(connection: asyncpg.Connection) -> bool:
    """Tell whether asyncpg's pool already took the connection back (the database ended it).

    A closed connection it has not taken back must still be released to it, or its slot
    is lost and closing the pool waits for it forever.
    """
    try:
        connection.is_closed()
    except asyncpg.InterfaceError:  # what a handle asyncpg took back says to any question
        return True
    return False
