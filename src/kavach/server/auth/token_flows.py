"""Service tokens of an environment: made, listed and revoked, each change audited.

The API's routes and the dashboard's pages both call these, after the gate admitted them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth.models import ServiceToken
from kavach.server.auth.schemas import ServiceTokenCreate
from kavach.server.auth.tokens import new_service_token, token_hash
from kavach.server.db.base import utcnow
from kavach.server.errors import AlreadyExists, NotFound
from kavach.server.iam.tree import flush_unique
from kavach.server.pages import Keyset, PageRequest

# Oldest first; the id breaks ties between tokens made in the same instant.
TOKENS = Keyset("tokens", ServiceToken.created_at, ServiceToken.id)


async def create(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: ServiceTokenCreate
) -> tuple[ServiceToken, str]:
    """Make a token on the admitted environment; return it and its secret (shown once)."""
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
    return token, secret


async def page_of(
    session: AsyncSession, environment_id: uuid.UUID, request: PageRequest, name: str | None
) -> tuple[list[ServiceToken], str | None]:
    """Return a page of an environment's tokens, oldest first (never their secrets)."""
    query = select(ServiceToken).where(ServiceToken.environment_id == environment_id)
    if name is not None:
        query = query.where(ServiceToken.name == name)
    found = list(await session.scalars(TOKENS.page(query, request)))
    return TOKENS.cut(found, request, lambda token: (token.created_at, token.id))


async def revoke(
    session: AsyncSession, access: Access, origin: RequestOrigin, token_id: str
) -> ServiceToken:
    """Revoke one of the admitted environment's tokens; it stops working at once."""
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
    return token
