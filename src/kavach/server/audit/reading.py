"""Reading the audit trail, as the API and the dashboard do: a scope's events, a chain checked."""

from __future__ import annotations

import uuid

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Scope
from kavach.server.audit import integrity, service
from kavach.server.audit.filters import EventFilter
from kavach.server.audit.schemas import AuditEventPublic, AuditVerification, ChainBreak
from kavach.server.pages import Page, PageRequest


async def events_page(
    session: AsyncSession, scope: Scope, filters: EventFilter, request: PageRequest
) -> Page[AuditEventPublic]:
    """Return a page of the scope's events (and all below it) that pass the filter, newest first."""
    where = and_(
        service.in_scope(
            organization_id=scope.organization_id,
            secret_group_id=scope.secret_group_id,
            environment_id=scope.environment_id,
        ),
        await filters.condition(session),
    )
    events, after = await service.list_events(session, where=where, request=request)
    first = await integrity.first_chained_id(session)
    items = [AuditEventPublic.of(e, integrity.chain_status(e, first)) for e in events]
    return Page(items=items, next=after)


async def verification(session: AsyncSession, organization_id: uuid.UUID) -> AuditVerification:
    """Recompute an organization's chain; report how far it holds and its first broken link."""
    report = await integrity.verify_chain(session, organization_id=organization_id)
    broken = report.broken
    return AuditVerification(
        organization_id=organization_id,
        intact=report.intact,
        events=report.events,
        legacy_events=report.legacy,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        broken=None
        if broken is None
        else ChainBreak(
            seq=broken.seq,
            event_id=broken.event_id,
            reason=broken.reason,
            message=broken.message,
        ),
    )
