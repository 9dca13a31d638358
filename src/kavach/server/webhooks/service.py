"""Database work of webhooks: made, listed, deleted; their deliveries listed; a ping queued."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.models import AuditEvent
from kavach.server.audit.service import chain_of
from kavach.server.db.base import utcnow
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.pages import Keyset, PageRequest
from kavach.server.webhooks.models import PENDING, Webhook, WebhookCursor, WebhookDelivery
from kavach.server.webhooks.payloads import Event, Place, body
from kavach.server.webhooks.schemas import PING

# Oldest first; the id breaks ties between webhooks made in the same instant.
WEBHOOKS = Keyset("webhooks", Webhook.created_at, Webhook.id)
# Newest first: the delivery log.
DELIVERIES = Keyset(
    "webhook-deliveries", WebhookDelivery.created_at, WebhookDelivery.id, descending=True
)


async def chain_head(session: AsyncSession, organization_id: uuid.UUID) -> int:
    """Return the last chain_seq of an organization's audit chain (0: none yet)."""
    found = await session.scalar(
        select(func.max(AuditEvent.chain_seq)).where(AuditEvent.chain == chain_of(organization_id))
    )
    return int(found or 0)


async def start_after(session: AsyncSession, webhook: Webhook) -> None:
    """Deliver to a new webhook what follows the chain's head: call after its event is appended.

    The append holds the chain's lock until the transaction ends, so the head read here is
    the webhook's own creation. The organization's cursor starts there unless another
    webhook still needs it where it is.
    """
    head = await chain_head(session, webhook.organization_id)
    webhook.after_seq = head
    cursor = await session.get(WebhookCursor, webhook.organization_id)
    if cursor is None:
        session.add(WebhookCursor(organization_id=webhook.organization_id, last_seq=head))
    elif not await _others(session, webhook):
        cursor.last_seq = max(cursor.last_seq, head)
    await session.flush()


async def _others(session: AsyncSession, webhook: Webhook) -> bool:
    other = select(Webhook.id).where(
        Webhook.organization_id == webhook.organization_id, Webhook.id != webhook.id
    )
    return await session.scalar(other.limit(1)) is not None


async def list_page(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    environment_id: uuid.UUID | None,
    request: PageRequest,
) -> tuple[list[Webhook], str | None]:
    """Return a page of webhooks, oldest first: an organization's all, or one environment's."""
    query = select(Webhook).where(Webhook.organization_id == organization_id)
    if environment_id is not None:
        query = query.where(Webhook.environment_id == environment_id)
    found = list(await session.scalars(WEBHOOKS.page(query, request)))
    return WEBHOOKS.cut(found, request, lambda hook: (hook.created_at, hook.id))


async def delete_webhook(session: AsyncSession, webhook: Webhook) -> None:
    """Delete a webhook and its deliveries; the last of its organization takes the cursor."""
    organization_id = webhook.organization_id
    await session.delete(webhook)
    await session.flush()
    left = select(Webhook.id).where(Webhook.organization_id == organization_id).limit(1)
    if await session.scalar(left) is None:
        await session.execute(
            delete(WebhookCursor).where(WebhookCursor.organization_id == organization_id)
        )


async def deliveries_page(
    session: AsyncSession, *, webhook_id: uuid.UUID, request: PageRequest
) -> tuple[list[WebhookDelivery], str | None]:
    """Return a page of a webhook's deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    found = list(await session.scalars(DELIVERIES.page(query, request)))
    return DELIVERIES.cut(found, request, lambda row: (row.created_at, row.id))


async def names(
    session: AsyncSession,
    environment_ids: Iterable[uuid.UUID],
    organization_ids: Iterable[uuid.UUID],
) -> dict[uuid.UUID, str]:
    """Return the names of environments, their groups and organizations, by id (two queries)."""
    found: dict[uuid.UUID, str] = {}
    envs = set(environment_ids)
    if envs:
        rows = await session.execute(
            select(Environment.id, Environment.name, SecretGroup.id, SecretGroup.name)
            .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
            .where(Environment.id.in_(envs))
        )
        for env_id, env_name, group_id, group_name in rows:
            found[env_id], found[group_id] = env_name, group_name
    orgs = set(organization_ids)
    if orgs:
        rows_org = await session.execute(
            select(Organization.id, Organization.name).where(Organization.id.in_(orgs))
        )
        found.update({org_id: name for org_id, name in rows_org})
    return found


async def group_of(session: AsyncSession, environment_id: uuid.UUID) -> uuid.UUID | None:
    """Return the secret group an environment is in."""
    return await session.scalar(
        select(Environment.secret_group_id).where(Environment.id == environment_id)
    )


async def queue_ping(session: AsyncSession, webhook: Webhook, actor: str | None) -> WebhookDelivery:
    """Queue a test delivery to a webhook, due at once."""
    group_id = None
    if webhook.environment_id is not None:
        group_id = await group_of(session, webhook.environment_id)
    known = await names(
        session,
        [webhook.environment_id] if webhook.environment_id else [],
        [webhook.organization_id],
    )

    def node(node_id: uuid.UUID | None) -> tuple[uuid.UUID, str | None] | None:
        return None if node_id is None else (node_id, known.get(node_id))

    place = Place((webhook.organization_id, known.get(webhook.organization_id)))
    place = Place(place.organization, node(group_id), node(webhook.environment_id))
    now = utcnow()
    delivery_id = uuid.uuid4()
    event = Event(type=PING, occurred_at=now, place=place, actor=actor, details={})
    delivery = WebhookDelivery(
        id=delivery_id,
        webhook_id=webhook.id,
        audit_event_id=None,
        event_type=PING,
        body=body(delivery_id, event, webhook.format),
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery
