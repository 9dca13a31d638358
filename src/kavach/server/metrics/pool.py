"""SQLAlchemy's queue pool, reporting connections lent out and how long each checkout waited."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

if TYPE_CHECKING:
    from kavach.server.metrics.registry import PoolGauges


class MeasuredQueuePool(AsyncAdaptedQueuePool):
    """The engine's usual pool; with gauges set, each checkout and return is counted."""

    # SQLAlchemy names a pool's logger after its class: keep the name its own pool logs under.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"
    gauges: PoolGauges | None = None

    @property
    def capacity(self) -> int:
        """Return how many connections the pool may open (its size plus overflow)."""
        return self.size() + max(self._max_overflow, 0)

    def _do_get(self) -> ConnectionPoolEntry:
        gauges = self.gauges
        if gauges is None:
            return super()._do_get()
        started = time.perf_counter()
        try:
            record = super()._do_get()
        finally:
            gauges.observe_wait(time.perf_counter() - started)
        gauges.checked_out()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        super()._do_return_conn(record)
        if self.gauges is not None:
            self.gauges.checked_in()

    def recreate(self) -> MeasuredQueuePool:
        """Return a fresh pool like this one, still reporting to the same gauges."""
        pool = super().recreate()
        assert isinstance(pool, MeasuredQueuePool)  # noqa: S101 - recreate keeps the class
        pool.gauges = self.gauges
        return pool
