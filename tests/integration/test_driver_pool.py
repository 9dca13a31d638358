"""The driver's pool (PostgreSQL): connections kept between uses, given back when needed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kavach.server.db.driver import DriverPool
from kavach.server.errors import ServiceUnavailable
from tests.conftest import InProcessServer

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
async def pool(server: InProcessServer) -> AsyncIterator[DriverPool]:
    """A pool of one connection on the server's database."""
    settings = server.runtime.settings.model_copy(deep=True)
    settings.db.db_driver_pool_size = 1
    settings.db.db_pool_timeout = 5
    pool = DriverPool(settings)
    yield pool
    await pool.close()


async def _backend(pool: DriverPool) -> int:
    async with pool.connection() as connection:
        pid: int = await connection.fetchval("SELECT pg_backend_pid()")
        return pid


async def test_a_transaction_left_open_is_rolled_back_before_the_next_use(
    pool: DriverPool, backend: str
) -> None:
    async with pool.connection() as connection:
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
    async with pool.connection() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT to_regclass('left_open')") is None


async def test_a_waiting_caller_gets_the_connection_when_it_is_given_back(
    pool: DriverPool, backend: str
) -> None:
    first = await _backend(pool)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with pool.connection():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(_backend(pool))
    await asyncio.sleep(0.2)
    assert not waiter.done()  # one connection, in use
    release.set()
    assert await asyncio.wait_for(waiter, timeout=5) == first
    await holder


async def test_a_connection_the_database_ended_is_replaced_unnoticed(
    server: InProcessServer, pool: DriverPool, backend: str
) -> None:
    ended = await _backend(pool)
    async with server.runtime.engine.connect() as outside:
        await outside.exec_driver_sql(f"SELECT pg_terminate_backend({int(ended)})")
    await asyncio.sleep(0.5)  # the driver sees the socket close while the connection is kept
    replaced = await _backend(pool)
    assert replaced != ended


async def test_a_connection_whose_user_failed_goes_back_to_the_pool(
    pool: DriverPool, backend: str
) -> None:
    await _backend(pool)
    assert pool._pool is not None and pool._pool.get_idle_size() == 0  # kept, not given back
    with pytest.raises(ServiceUnavailable):
        async with pool.connection() as connection:
            await connection.execute("SELECT 1/0")  # the database refuses it
    assert pool._pool.get_idle_size() == 1  # given back, for asyncpg to reset or replace
    await _backend(pool)


async def test_closing_waits_for_a_connection_in_use_and_lends_no_more(
    pool: DriverPool, backend: str
) -> None:
    await _backend(pool)  # one kept
    in_use = asyncio.Event()
    release = asyncio.Event()

    async def use() -> int:
        async with pool.connection() as connection:
            in_use.set()
            await release.wait()
            pid: int = await connection.fetchval("SELECT pg_backend_pid()")
            return pid

    user = asyncio.create_task(use())
    await in_use.wait()
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0.2)
    assert not closing.done()  # waits for the connection in use
    release.set()
    assert await user
    await asyncio.wait_for(closing, timeout=5)
    with pytest.raises(ServiceUnavailable):
        await _backend(pool)
