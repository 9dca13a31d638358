"""The sync ledger: which remote names Kavach wrote for an environment, and what."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.db.base import utcnow
from kavach.server.sync.models import SyncLedgerEntry


async def load(
    session: AsyncSession, *, environment_id: uuid.UUID, target: str
) -> dict[str, tuple[str, str]]:
    """Return remote name -> (kavach name, value hmac) for one environment and target."""
    rows = await session.scalars(
        select(SyncLedgerEntry).where(
            SyncLedgerEntry.environment_id == environment_id,
            SyncLedgerEntry.target_key == target,
        )
    )
    return {row.remote_name: (row.name, row.value_hmac) for row in rows}


async def record_write(
    session: AsyncSession,
    *,
    environment_id: uuid.UUID,
    target: str,
    remote_name: str,
    name: str,
    value_hmac: str,
) -> None:
    """Note that Kavach wrote a value to a remote name."""
    entry = await session.get(SyncLedgerEntry, (environment_id, target, remote_name))
    if entry is None:
        entry = SyncLedgerEntry(
            environment_id=environment_id, target_key=target, remote_name=remote_name
        )
        session.add(entry)
    entry.name = name
    entry.value_hmac = value_hmac
    entry.updated_at = utcnow()
    await session.flush()


async def record_delete(
    session: AsyncSession, *, environment_id: uuid.UUID, target: str, remote_name: str
) -> None:
    """Forget a remote name Kavach deleted."""
    await session.execute(
        delete(SyncLedgerEntry).where(
            SyncLedgerEntry.environment_id == environment_id,
            SyncLedgerEntry.target_key == target,
            SyncLedgerEntry.remote_name == remote_name,
        )
    )
