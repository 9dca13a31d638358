"""HTTP routes of workload identity: an environment's trusts, and the token exchange."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.errors import NotFound, ValidationFailed
from kavach.server.oidc.fetch import allowed_scheme
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.ratelimit import client_key
from kavach.server.rbac.deps import Requirement
from kavach.server.workload import flows, service
from kavach.server.workload.models import WorkloadTrust
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


async def _found(session: SessionDep, access: Access, trust_id: str) -> WorkloadTrust:
    try:
        wanted = uuid.UUID(trust_id)
    except ValueError:
        raise NotFound("workload trust not found") from None
    trust = await service.get(session, environment_id=access.environment_id, trust_id=wanted)
    if trust is None:
        raise NotFound("workload trust not found")
    return trust


@router.post("", status_code=201, response_model=Envelope[TrustPublic])
async def create_trust(
    body: TrustCreate,
    access: Annotated[Access, Depends(Requirement("trust.create", "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[TrustPublic]:
    """Trust an issuer's tokens whose claims match the conditions, with a role here."""
    if not allowed_scheme(body.issuer, allow_private=runtime.settings.private_targets_allowed):
        # Said as a schema refusal is: the setting is the server's, not the schema's.
        https = "must be an https URL"
        raise ValidationFailed(
            f"invalid request: issuer: {https}",
            data={"errors": [{"field": "body.issuer", "message": https}]},
        )
    trust = await service.create(
        session, environment_id=access.environment_id, body=body, creator=access.user.user.id
    )
    await audit.record_request(
        session,
        access,
        origin,
        "trust.create",
        "environment",
        access.environment_id,
        trust=trust.name,
        issuer=trust.issuer,
        audience=trust.audience,
        conditions=trust.conditions,
        role=trust.role,
        token_ttl_seconds=trust.token_ttl_seconds,
    )
    return ok(TrustPublic.model_validate(trust))


@router.get("", response_model=Envelope[Page[TrustPublic]])
async def list_trusts(
    access: Annotated[Access, Depends(Requirement("trust.read", "environment"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[TrustPublic]]:
    """List the environment's workload trusts, oldest first."""
    trusts, after = await service.list_page(
        session, environment_id=access.environment_id, request=page, name=name
    )
    return ok(Page(items=[TrustPublic.model_validate(trust) for trust in trusts], next=after))


@router.get("/{trust_id}", response_model=Envelope[TrustPublic])
async def get_trust(
    trust_id: str,
    access: Annotated[Access, Depends(Requirement("trust.read", "environment"))],
    session: SessionDep,
) -> Envelope[TrustPublic]:
    """Return one workload trust."""
    return ok(TrustPublic.model_validate(await _found(session, access, trust_id)))


@router.delete("/{trust_id}", response_model=Envelope[TrustDeleted])
async def delete_trust(
    trust_id: str,
    access: Annotated[Access, Depends(Requirement("trust.delete", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[TrustDeleted]:
    """Delete a workload trust; the tokens it issued stop working at once."""
    trust = await _found(session, access, trust_id)
    public = TrustPublic.model_validate(trust)
    deleted = await service.delete_trust(session, trust=trust)
    await audit.record_request(
        session,
        access,
        origin,
        "trust.delete",
        "environment",
        access.environment_id,
        trust=public.name,
        tokens_deleted=deleted,
    )
    return ok(TrustDeleted(**public.model_dump(), tokens_deleted=deleted))


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
