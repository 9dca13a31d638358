"""HTTP routes of webhooks: an organization's or environment's, and each one's deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.providers.egress import Egress
from kavach.server.rbac.deps import Requirement
from kavach.server.webhooks import usecases
from kavach.server.webhooks.schemas import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)

router = api_router(prefix=API_PREFIX, tags=["webhooks"])
_CREATED = "Register a webhook; the answer holds its signing secret, shown this once."


@router.post(
    "/organizations/{id}/webhooks",
    status_code=201,
    response_model=Envelope[WebhookCreated],
    description=_CREATED,
)
async def create_organization_webhook(
    body: WebhookCreate,
    access: Annotated[Access, Depends(Requirement("webhook.create", "organization"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[WebhookCreated]:
    """Send the events of everything in the organization to an endpoint."""
    key, egress = runtime.keys.provider_credential_key, Egress.of(runtime.settings)
    return ok(await usecases.create(session, access, origin, body, key=key, egress=egress))


@router.post(
    "/environments/{id}/webhooks",
    status_code=201,
    response_model=Envelope[WebhookCreated],
    description=_CREATED,
)
async def create_environment_webhook(
    body: WebhookCreate,
    access: Annotated[Access, Depends(Requirement("webhook.create", "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[WebhookCreated]:
    """Send the environment's events to an endpoint."""
    key, egress = runtime.keys.provider_credential_key, Egress.of(runtime.settings)
    return ok(await usecases.create(session, access, origin, body, key=key, egress=egress))


@router.get("/organizations/{id}/webhooks", response_model=Envelope[Page[WebhookPublic]])
async def list_organization_webhooks(
    access: Annotated[Access, Depends(Requirement("webhook.read", "organization"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[WebhookPublic]]:
    """List the organization's webhooks, its environments' included, oldest first."""
    return ok(await usecases.listing(session, access, page))


@router.get("/environments/{id}/webhooks", response_model=Envelope[Page[WebhookPublic]])
async def list_environment_webhooks(
    access: Annotated[Access, Depends(Requirement("webhook.read", "environment"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[WebhookPublic]]:
    """List the environment's own webhooks, oldest first."""
    return ok(await usecases.listing(session, access, page))


@router.delete("/webhooks/{id}", response_model=Envelope[WebhookPublic])
async def delete_webhook(
    access: Annotated[Access, Depends(Requirement("webhook.delete", "webhook"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[WebhookPublic]:
    """Delete a webhook and its delivery log; nothing more is sent to it."""
    return ok(await usecases.delete(session, access, origin))


@router.get("/webhooks/{id}/deliveries", response_model=Envelope[Page[DeliveryPublic]])
async def list_deliveries(
    access: Annotated[Access, Depends(Requirement("webhook.read", "webhook"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[DeliveryPublic]]:
    """List a webhook's deliveries, newest first: status, attempts, answer, next attempt."""
    return ok(await usecases.deliveries(session, access, page))


@router.post("/webhooks/{id}/test", status_code=202, response_model=Envelope[DeliveryPublic])
async def test_webhook(
    access: Annotated[Access, Depends(Requirement("webhook.test", "webhook"))],
    session: SessionDep,
) -> Envelope[DeliveryPublic]:
    """Queue a `ping` event to the webhook; its delivery shows in the log."""
    return ok(await usecases.ping(session, access))
