"""HTTP routes for service tokens: machine identities bound to one environment."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.auth import token_flows
from kavach.server.auth.schemas import ServiceTokenCreate, ServiceTokenCreated, ServiceTokenPublic
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
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
    token, secret = await token_flows.create(session, access, origin, body)
    public = ServiceTokenPublic.model_validate(token)
    return ok(ServiceTokenCreated(**public.model_dump(), token=secret))


@router.get("", response_model=Envelope[Page[ServiceTokenPublic]])
async def list_tokens(
    access: Annotated[Access, Depends(Requirement("token.read", "environment"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[ServiceTokenPublic]]:
    """List an environment's service tokens, oldest first (never their secrets)."""
    tokens, after = await token_flows.page_of(session, access.environment_id, page, name)
    return ok(Page(items=[ServiceTokenPublic.model_validate(t) for t in tokens], next=after))


@router.delete("/{token_id}", response_model=Envelope[ServiceTokenPublic])
async def revoke_token(
    token_id: str,
    access: Annotated[Access, Depends(Requirement("token.revoke", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[ServiceTokenPublic]:
    """Revoke a service token; it stops working at once."""
    token = await token_flows.revoke(session, access, origin, token_id)
    return ok(ServiceTokenPublic.model_validate(token))
