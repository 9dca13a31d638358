"""HTTP routes for service tokens: machine identities bound to one environment."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.auth.models import ServiceToken
from kavach.server.auth.schemas import ServiceTokenCreate, ServiceTokenCreated, ServiceTokenPublic
from kavach.server.auth.tokens import new_service_token, token_hash
from kavach.server.db.base import utcnow
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.errors import AlreadyExists, NotFound
from kavach.server.iam.tree import flush_unique
from kavach.server.page_query import PageDep
from kavach.server.pages import Keyset, Page
from kavach.server.rbac.deps import Requirement

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}/tokens", tags=["service tokens"])


@router.post("", status_code=201, response_model=Envelope[ServiceTokenCreated])
async def create_token(
    body: ServiceTokenCreate,
    access: Annotated[Access, Depends(Requirement("token.create", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[ServiceTokenCreated]:
    """Create a service token; its secret is in this response only."""
    secret = new_service_token()
    token = ServiceToken(
        environment_id=access.environment_id,
        name=body.name,
        role=body.role,
        token_hash=token_hash(secret),
        created_by=access.user.user.id,
        expires_at=utcnow() + timedelta(seconds=body.expires_in),
    )
    exists = select(ServiceToken.id).where(
        ServiceToken.environment_id == token.environment_id, ServiceToken.name == body.name
    )
    if await session.scalar(exists):
        raise AlreadyExists(f"a token named {body.name!r} already exists here")
    session.add(token)
    await flush_unique(session, "token", body.name)
    await audit.record(
        session,
        actor=access.principal.actor,
        action="token.create",
        origin=origin,
        resource_type="service_token",
        resource_id=str(token.id),
        details={
            "name": token.name,
            "role": token.role,
            "environment_id": str(token.environment_id),
        },
    )
    public = ServiceTokenPublic.model_validate(token)
    return ok(ServiceTokenCreated(**public.model_dump(), token=secret))


# Oldest first; the id breaks ties between tokens made in the same instant.
TOKENS = Keyset("tokens", ServiceToken.created_at, ServiceToken.id)


@router.get("", response_model=Envelope[Page[ServiceTokenPublic]])
async def list_tokens(
    access: Annotated[Access, Depends(Requirement("token.read", "environment"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[ServiceTokenPublic]]:
    """List an environment's service tokens, oldest first (never their secrets)."""
    query = select(ServiceToken).where(ServiceToken.environment_id == access.environment_id)
    if name is not None:
        query = query.where(ServiceToken.name == name)
    found = list(await session.scalars(TOKENS.page(query, page)))
    tokens, after = TOKENS.cut(found, page, lambda token: (token.created_at, token.id))
    return ok(Page(items=[ServiceTokenPublic.model_validate(t) for t in tokens], next=after))


@router.delete("/{token_id}", response_model=Envelope[ServiceTokenPublic])
async def revoke_token(
    token_id: str,
    access: Annotated[Access, Depends(Requirement("token.revoke", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[ServiceTokenPublic]:
    """Revoke a service token; it stops working at once."""
    try:
        wanted = uuid.UUID(token_id)
    except ValueError:
        raise NotFound("service token not found") from None
    token = await session.get(ServiceToken, wanted)
    if token is None or token.environment_id != access.environment_id:
        raise NotFound("service token not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    await audit.record(
        session,
        actor=access.principal.actor,
        action="token.revoke",
        origin=origin,
        resource_type="service_token",
        resource_id=str(token.id),
        details={"name": token.name},
    )
    return ok(ServiceTokenPublic.model_validate(token))
