"""Whether each sync target of an environment holds what the environment resolves to now.

A target is up to date when its last sync succeeded and pushed the environment's current
revision (its version and those of the environments its references reach, see
secrets.linking.revision): a change to a referenced secret leaves it out of date too.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.providers.models import ProviderConfig
from kavach.server.secrets.revisions import revision_of
from kavach.server.sync import runs
from kavach.server.sync.models import SyncRun
from kavach.server.sync.schemas import SyncTargetStatus


async def targets(session: AsyncSession, environment_id: uuid.UUID) -> list[SyncTargetStatus]:
    """Describe each configured provider's target: what it holds, and whether that is current."""
    current = await revision_of(session, environment_id)
    configured = await session.scalars(
        select(ProviderConfig.provider)
        .where(ProviderConfig.environment_id == environment_id)
        .order_by(ProviderConfig.provider)
    )
    found = []
    for provider in configured:
        last = await session.scalar(
            select(SyncRun)
            .where(
                SyncRun.environment_id == environment_id,
                SyncRun.provider == provider,
                SyncRun.dry_run.is_(False),
                SyncRun.status != runs.RUNNING,
            )
            .order_by(SyncRun.created_at.desc())
            .limit(1)
        )
        found.append(_status(provider, current, last))
    return found


def _status(provider: str, current: str, last: SyncRun | None) -> SyncTargetStatus:
    """Say whether a provider's last run left its target holding the current revision."""
    reason = _stale_because(current, last)
    return SyncTargetStatus(
        provider=provider,
        current_revision=current,
        synced_revision=last.revision if last is not None else None,
        up_to_date=reason is None,
        reason=reason,
        last_run=runs.public(last) if last is not None else None,
    )


def _stale_because(current: str, last: SyncRun | None) -> str | None:
    """Return why a target is out of date, or None if it is not."""
    if last is None:
        return "never synced"
    if last.status != "succeeded":
        return f"the last sync ended {last.status}"
    if last.revision is None:
        return "the last sync pushed an older version than the latest"
    if last.revision == current:
        return None
    synced_seq, current_seq = last.revision.split("-")[0], current.split("-")[0]
    if synced_seq != current_seq:
        return f"version {current_seq} was committed since (the target holds {synced_seq})"
    return "a secret it refers to changed since"
