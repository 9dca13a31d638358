"""One sync per target at a time, across processes and server instances."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from filelock import FileLock, Timeout
from sqlalchemy import text

from kavach.server.errors import Conflict
from kavach.server.runtime import Runtime


class SyncInProgress(Conflict):
    """Another sync of the same target is running."""

    error_code = "sync_in_progress"


def _lock_id(target: str) -> int:
    # pg advisory locks take a signed 64-bit key.
    return int.from_bytes(
        hashlib.sha256(b"kavach-sync:" + target.encode()).digest()[:8], "big", signed=True
    )


@asynccontextmanager
async def target_lock(runtime: Runtime, target: str) -> AsyncIterator[None]:
    """Hold the target's lock for the block, or fail at once with 409 sync_in_progress."""
    busy = SyncInProgress(f"another sync of {target} is running; try again when it ends")
    if runtime.settings.is_sqlite:
        digest = hashlib.sha256(target.encode()).hexdigest()[:32]
        lock = FileLock(str(runtime.settings.data_dir / f"sync-{digest}.lock"), mode=0o600)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise busy from None
        try:
            yield
        finally:
            lock.release()
        return
    async with runtime.engine.connect() as conn:
        # A session-level advisory lock on a dedicated connection: held across the remote
        # calls without keeping any transaction open.
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": _lock_id(target)})
        await conn.commit()
        if not got:
            raise busy
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _lock_id(target)})
            await conn.commit()
