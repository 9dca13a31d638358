"""What can be done with webhooks, after the gate admitted it: each change audited.

The signing secret is returned once, by `create`; it is never logged, audited or shown again.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin, Scope
from kavach.server.audit import service as audit
from kavach.server.errors import NotFound, ValidationFailed
from kavach.server.oidc.fetch import allowed_scheme
from kavach.server.pages import Page, PageRequest
from kavach.server.providers.egress import Egress
from kavach.server.webhooks import service, signing, targets
from kavach.server.webhooks.models import Webhook
from kavach.server.webhooks.schemas import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)

HTTPS_ONLY = "must be an https URL"


def _scope(access: Access) -> Scope:
    scope = access.scope
    assert scope is not None  # noqa: S101 - a requirement on a resource sets it
    return scope


def _webhook(access: Access) -> Webhook:
    if not isinstance(access.resource, Webhook):
        raise NotFound("webhook not found")
    return access.resource


async def create(
    session: AsyncSession,
    access: Access,
    origin: RequestOrigin,
    body: WebhookCreate,
    *,
    key: bytes,
    egress: Egress,
) -> WebhookCreated:
    """Register an endpoint for the organization's or environment's events; return its secret."""
    if not allowed_scheme(body.url, allow_private=egress.allow_private):
        # Said as a schema refusal is: the setting is the server's, not the schema's.
        raise ValidationFailed(
            f"invalid request: url: {HTTPS_ONLY}",
            data={"errors": [{"field": "body.url", "message": HTTPS_ONLY}]},
        )
    await egress.check_url(body.url)  # 422 target_not_allowed, before anything is written
    scope = _scope(access)
    secret = signing.new_secret()
    webhook_id = uuid.uuid4()
    webhook = Webhook(
        id=webhook_id,
        organization_id=scope.organization_id,
        environment_id=scope.environment_id,
        url_shown=targets.shown(body.url),
        format=body.format,
        events=body.events,
        sealed_target=targets.seal_target(key, webhook_id, body.url, secret),
        after_seq=0,
        created_by=access.user.user.id,
    )
    session.add(webhook)
    await session.flush()
    await audit.record_request(
        session,
        access,
        origin,
        "webhook.create",
        scope.resource_type,
        scope.resource_id,
        webhook_id=str(webhook_id),
        url=webhook.url_shown,
        format=webhook.format,
        events=webhook.events,
    )
    await service.start_after(session, webhook)
    public = WebhookPublic.model_validate(webhook)
    return WebhookCreated(**public.model_dump(), secret=secret)


async def listing(
    session: AsyncSession, access: Access, request: PageRequest
) -> Page[WebhookPublic]:
    """List the organization's webhooks (all of them) or the environment's."""
    scope = _scope(access)
    found, after = await service.list_page(
        session,
        organization_id=scope.organization_id,
        environment_id=scope.environment_id,
        request=request,
    )
    return Page(items=[WebhookPublic.model_validate(hook) for hook in found], next=after)


async def delete(session: AsyncSession, access: Access, origin: RequestOrigin) -> WebhookPublic:
    """Delete a webhook with its deliveries: nothing more is sent to it."""
    webhook, scope = _webhook(access), _scope(access)
    public = WebhookPublic.model_validate(webhook)
    await service.delete_webhook(session, webhook)
    await audit.record_request(
        session,
        access,
        origin,
        "webhook.delete",
        scope.resource_type,
        scope.resource_id,
        webhook_id=str(public.id),
        url=public.url,
    )
    return public


async def deliveries(
    session: AsyncSession, access: Access, request: PageRequest
) -> Page[DeliveryPublic]:
    """Return a webhook's delivery log, newest first."""
    webhook = _webhook(access)
    found, after = await service.deliveries_page(session, webhook_id=webhook.id, request=request)
    return Page(items=[DeliveryPublic.model_validate(row) for row in found], next=after)


async def ping(session: AsyncSession, access: Access) -> DeliveryPublic:
    """Queue a test event (`ping`) to the webhook; the dispatcher sends it within a second."""
    webhook = _webhook(access)
    delivery = await service.queue_ping(session, webhook, access.principal.actor.label)
    return DeliveryPublic.model_validate(delivery)
