"""Group commit for audit events of reads: many requests' events, one transaction per chain.

Every read of secret values is audited, and a read is answered only once its event is
committed. Appending is serialised (one chain, one lock), so a transaction per read would
make reads queue behind each other's commits; instead the events that arrive while one
batch commits go together in the next. On PostgreSQL each chain's events are one statement
chained on the head this server last saw (audit.service.append_at_head): a round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.audit.chain import AuditKey
from kavach.server.audit.service import NewEvent, append, append_at_head, chain_of
from kavach.server.db.driver import DriverPool
from kavach.server.errors import ServiceUnavailable
from kavach.server.logging import get_logger

if TYPE_CHECKING:
    from kavach.server.metrics.registry import GroupCommits

log = get_logger(__name__)
MAX_BATCH = 500
_Entry = tuple[NewEvent, asyncio.Future[None]]


class AuditBatcher:
    """Append events from concurrent requests in shared transactions; callers await theirs."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        driver_pool: DriverPool | None = None,
        key: AuditKey | None = None,
        heads: dict[str, tuple[int, str]] | None = None,
        batches: GroupCommits | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # PostgreSQL: batches go to the driver directly (see db.driver).
        self._driver_pool = driver_pool
        self._key = key  # the driver's appends sign with it (PostgreSQL)
        # Each chain's head as last seen; the secret store's commits share it.
        self._heads = {} if heads is None else heads
        self._batches = batches  # None: metrics are off
        self._pending: list[_Entry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._committing = False

    async def record(self, event: NewEvent) -> None:
        """Return once the event is committed; raise ServiceUnavailable if it cannot be."""
        await self.submit(event)

    @property
    def committing(self) -> bool:
        """Whether a batch is being committed (a new event waits for the next one)."""
        return self._committing

    def submit(self, event: NewEvent) -> asyncio.Future[None]:
        """Queue the event; the future returned settles when it is committed (or cannot be).

        The batch goes out the next time the caller yields, so work done between that and
        awaiting the future overlaps the commit.
        """
        if self._closing:
            raise ServiceUnavailable("the server is shutting down")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="audit-batcher")
        self._wake.set()
        return done

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            self._committing = True
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._commit(batch)
            self._committing = False

    async def _commit(self, batch: list[_Entry]) -> None:
        started, ok = time.perf_counter(), False
        try:
            if self._driver_pool is None:
                async with self._sessionmaker() as session, session.begin():
                    await append(session, [event for event, _ in batch])
                _settle(batch)
            else:
                await self._commit_with_driver(self._driver_pool, batch)
            ok = True
        except Exception as error:  # whatever went wrong, every waiting request must hear it
            _fail(batch, error)
        finally:
            if self._batches is not None:
                self._batches.observe(len(batch), time.perf_counter() - started, ok=ok)

    async def _commit_with_driver(self, pool: DriverPool, batch: list[_Entry]) -> None:
        """Append each chain's events in a statement of its own; settle each chain's waiters."""
        if self._key is None:
            raise RuntimeError("appending through the driver needs the audit key")
        by_chain: defaultdict[str, list[_Entry]] = defaultdict(list)
        for entry in batch:
            by_chain[chain_of(entry[0].where.organization_id)].append(entry)
        async with pool.connection() as driver:
            for chain, entries in by_chain.items():
                events = [event for event, _ in entries]
                try:
                    await append_at_head(driver, self._key, chain, events, self._heads)
                except Exception as error:  # this chain's readers hear it; the others go on
                    _fail(entries, error)
                    continue
                _settle(entries)

    async def close(self) -> None:
        """Let the events already queued commit, then stop."""
        self._closing = True
        if self._task is not None and not self._task.done():
            self._wake.set()
            await self._task


def _fail(entries: list[_Entry], error: Exception) -> None:
    """Tell each waiter its event could not be committed."""
    # The type only: a driver's message may quote the values it was given.
    log.error("audit_batch_failed", events=len(entries), error=type(error).__name__)
    for _, done in entries:
        if not done.done():  # one exception each: shared, their tracebacks would mix
            done.set_exception(ServiceUnavailable("the audit trail cannot be written"))


def _settle(entries: list[_Entry]) -> None:
    """Tell each waiter its event is committed."""
    for _, done in entries:
        if not done.done():  # a caller that went away no longer waits
            done.set_result(None)
