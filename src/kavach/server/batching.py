"""Work from concurrent requests on one key, gathered into batches that run one at a time.

Work that must run serially per key (commits to one environment hold its lock) costs a
lock and a transaction each time. Requests that arrive while a batch runs wait for the
next one, which runs them all in one go; a request alone is a batch of one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from kavach.server.errors import ServiceUnavailable
from kavach.server.logging import get_logger

if TYPE_CHECKING:
    from kavach.server.metrics.registry import GroupCommits

Item = TypeVar("Item")
Result = TypeVar("Result")
# Runs a batch and returns one outcome per item, in order: a result or the item's error.
Run = Callable[[list[Item]], Awaitable[list[Result | Exception]]]

log = get_logger(__name__)


class KeyedBatches(Generic[Item, Result]):
    """Batches per key: at most one runs for a key at a time, of at most `max_batch` items."""

    def __init__(self, max_batch: int, batches: GroupCommits | None = None) -> None:
        self._max_batch = max_batch
        self._batches = batches  # None: metrics are off
        self._pending: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._running: set[asyncio.Task[None]] = set()  # held, so they are not collected

    async def submit(self, key: Hashable, item: Item, run: Run[Item, Result]) -> Result:
        """Queue an item under its key and return its outcome once its batch has run."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
            task = asyncio.create_task(self._drain(key, pending, run), name="keyed-batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        pending.append((item, done))
        return await done

    async def _drain(
        self,
        key: Hashable,
        pending: list[tuple[Item, asyncio.Future[Result]]],
        run: Run[Item, Result],
    ) -> None:
        try:
            while pending:
                batch = pending[: self._max_batch]
                del pending[: self._max_batch]
                await self._run(batch, run)
        finally:
            # Nothing awaits between the last check and here, so no item is left behind.
            del self._pending[key]

    async def _run(
        self, batch: list[tuple[Item, asyncio.Future[Result]]], run: Run[Item, Result]
    ) -> None:
        started, ok = time.perf_counter(), False
        try:
            outcomes = await run([item for item, _ in batch])
            ok = True
        except Exception as error:  # whatever went wrong, every waiting request must hear it
            log.error("batch_failed", items=len(batch), error=type(error).__name__)
            # One exception each: shared, their tracebacks would mix.
            outcomes = [ServiceUnavailable("the request could not be completed") for _ in batch]
        if self._batches is not None:
            self._batches.observe(len(batch), time.perf_counter() - started, ok=ok)
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():  # a caller that went away no longer waits
                continue
            if isinstance(outcome, Exception):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
