"""Turn new audit events into deliveries: each organization's chain read from its cursor.

Events are appended to a chain under its lock, one `chain_seq` after another, so what is
committed of a chain is always a prefix of it: reading past the cursor never skips an event
that commits later. The deliveries and the cursor's move are one transaction; on PostgreSQL
the cursor's row is locked (SKIP LOCKED), so of several servers one reads a chain at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.audit.models import AuditEvent
from kavach.server.audit.service import chain_of
from kavach.server.db.base import utcnow
from kavach.server.webhooks import service
from kavach.server.webhooks.models import PENDING, Webhook, WebhookCursor, WebhookDelivery
from kavach.server.webhooks.payloads import Event, Place, body, event_type

BATCH = 200  # events read from a chain per transaction


async def chains_with_news(session: AsyncSession) -> list[uuid.UUID]:
    """Return the organizations whose chain has events past their cursor (one or two reads)."""
    cursors = (
        await session.execute(select(WebhookCursor.organization_id, WebhookCursor.last_seq))
    ).all()
    if not cursors:
        return []
    by_chain = {chain_of(org_id): org_id for org_id, _ in cursors}
    past = or_(
        *(
            and_(AuditEvent.chain == chain_of(org_id), AuditEvent.chain_seq > last_seq)
            for org_id, last_seq in cursors
        )
    )
    found = await session.scalars(select(AuditEvent.chain).where(past).group_by(AuditEvent.chain))
    return [by_chain[chain] for chain in found if chain in by_chain]


def _matches(hook: Webhook, event: AuditEvent, kind: str) -> bool:
    return (
        (event.chain_seq or 0) > hook.after_seq
        and (hook.environment_id is None or hook.environment_id == event.environment_id)
        and (hook.events is None or kind in hook.events)
    )


def _place(event: AuditEvent, names: dict[uuid.UUID, str]) -> Place:
    def node(node_id: uuid.UUID | None) -> tuple[uuid.UUID, str | None] | None:
        return None if node_id is None else (node_id, names.get(node_id))

    organization = node(event.organization_id)
    assert organization is not None  # noqa: S101 - a chain's events are its organization's
    return Place(organization, node(event.secret_group_id), node(event.environment_id))


def _event(event: AuditEvent, kind: str, names: dict[uuid.UUID, str]) -> Event:
    return Event(
        type=kind,
        occurred_at=event.occurred_at,
        place=_place(event, names),
        actor=event.actor_label,
        details=dict(event.details or {}),
        audit_event_id=event.id,
    )


async def _deliveries(
    session: AsyncSession, events: Sequence[AuditEvent], hooks: Sequence[Webhook]
) -> list[WebhookDelivery]:
    wanted = [(event, kind) for event in events if (kind := event_type(event)) is not None]
    pairs = [
        (event, kind, hook)
        for event, kind in wanted
        for hook in hooks
        if _matches(hook, event, kind)
    ]
    if not pairs:
        return []
    names = await service.names(
        session,
        {event.environment_id for event, _, _ in pairs if event.environment_id},
        {event.organization_id for event, _, _ in pairs if event.organization_id},
    )
    made, now = [], utcnow()
    for event, kind, hook in pairs:
        delivery_id = uuid.uuid4()
        made.append(
            WebhookDelivery(
                id=delivery_id,
                webhook_id=hook.id,
                audit_event_id=event.id,
                event_type=kind,
                body=body(delivery_id, _event(event, kind, names), hook.format),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
            )
        )
    return made


async def fan_out(session: AsyncSession, organization_id: uuid.UUID) -> int:
    """Read a chain past its cursor (one batch), queue deliveries; return how many events read."""
    cursor = await session.scalar(
        select(WebhookCursor)
        .where(WebhookCursor.organization_id == organization_id)
        .with_for_update(skip_locked=True)
    )
    if cursor is None:  # another server holds it, or its last webhook went
        return 0
    events = list(
        await session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.chain == chain_of(organization_id),
                AuditEvent.chain_seq > cursor.last_seq,
            )
            .order_by(AuditEvent.chain_seq)
            .limit(BATCH)
        )
    )
    if not events:
        return 0
    hooks = list(
        await session.scalars(select(Webhook).where(Webhook.organization_id == organization_id))
    )
    session.add_all(await _deliveries(session, events, hooks))
    cursor.last_seq = max(event.chain_seq or 0 for event in events)
    await session.flush()
    return len(events)


async def fan_out_all(
    sessions: async_sessionmaker[AsyncSession], read_sessions: async_sessionmaker[AsyncSession]
) -> int:
    """Queue the deliveries of every chain's new events; return how many events were read."""
    async with read_sessions() as session:
        chains = await chains_with_news(session)
    read = 0
    for organization_id in chains:
        while True:
            async with sessions() as session, session.begin():
                found = await fan_out(session, organization_id)
            read += found
            if found < BATCH:
                break
    return read
