"""HTTP routes of workload identity: an environment's trusts, and the token exchange."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.ratelimit import client_key
from kavach.server.rbac.deps import Requirement
from kavach.server.workload import flows, service, trusts
from kavach.server.workload.schemas import (
    TokenExchange,
    TrustCreate,
    TrustDeleted,
    TrustPublic,
    WorkloadToken,
)

router = api_router(
    prefix=f"{API_PREFIX}/environments/{{id}}/workload-trusts", tags=["workload identity"]
)
exchange_router = api_router(prefix=f"{API_PREFIX}/auth", tags=["workload identity"])


@router.post("", status_code=201, response_model=Envelope[TrustPublic])
async def create_trust(
    body: TrustCreate,
    access: Annotated[Access, Depends(Requirement("trust.create", "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[TrustPublic]:
    """Trust an issuer's tokens whose claims match the conditions, with a role here."""
    private_allowed = runtime.settings.private_targets_allowed
    trust = await trusts.create(session, access, origin, body, private_allowed=private_allowed)
    return ok(TrustPublic.model_validate(trust))


@router.get("", response_model=Envelope[Page[TrustPublic]])
async def list_trusts(
    access: Annotated[Access, Depends(Requirement("trust.read", "environment"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[TrustPublic]]:
    """List the environment's workload trusts, oldest first."""
    found, after = await service.list_page(
        session, environment_id=access.environment_id, request=page, name=name
    )
    return ok(Page(items=[TrustPublic.model_validate(trust) for trust in found], next=after))


@router.get("/{trust_id}", response_model=Envelope[TrustPublic])
async def get_trust(
    trust_id: str,
    access: Annotated[Access, Depends(Requirement("trust.read", "environment"))],
    session: SessionDep,
) -> Envelope[TrustPublic]:
    """Return one workload trust."""
    return ok(TrustPublic.model_validate(await trusts.found(session, access, trust_id)))


@router.delete("/{trust_id}", response_model=Envelope[TrustDeleted])
async def delete_trust(
    trust_id: str,
    access: Annotated[Access, Depends(Requirement("trust.delete", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[TrustDeleted]:
    """Delete a workload trust; the tokens it issued stop working at once."""
    return ok(await trusts.delete(session, access, origin, trust_id))


@exchange_router.post("/oidc-token", response_model=Envelope[WorkloadToken])
async def oidc_token(
    body: TokenExchange, runtime: RuntimeDep, session: SessionDep, origin: OriginDep
) -> Envelope[WorkloadToken]:
    """Exchange a workload's OIDC token (GitHub Actions, GitLab, Kubernetes) for a service token.

    No bearer token: the platform's token is the credential. The environment's workload
    trusts decide whether it is admitted, and with which role.
    """
    await runtime.limiter.hit("oidc_token", client_key(origin.client_address))
    return ok(
        await flows.exchange(
            keys=runtime.workload_issuers,
            read_sessions=runtime.read_sessionmaker,
            session=session,
            body=body,
            origin=origin,
        )
    )
