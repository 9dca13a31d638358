"""Statements run on asyncpg directly, for the few hot paths where SQLAlchemy's layers cost most.

The statements are still written once, in SQLAlchemy, and compiled here to the driver's
SQL; only their execution skips the ORM and the engine. PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from kavach.server.errors import ServiceUnavailable
from kavach.server.logging import get_logger

log = get_logger(__name__)
_DIALECT = asyncpg_dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
# What the driver raises when the database or the connection fails (not a bug here).
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


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


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """Lend a pooled connection's driver; a database failure becomes a 503.

    A connection that failed is invalidated, so the pool never hands it out again.
    """
    async with engine.connect() as connection:
        driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
        try:
            yield driver
        except DRIVER_ERRORS as error:
            await connection.invalidate()
            log.warning("database_unavailable", error=type(error).__name__)
            raise ServiceUnavailable("the database is unavailable; retry later") from None
