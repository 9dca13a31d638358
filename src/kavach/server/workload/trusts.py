"""An environment's workload trusts: made, found and deleted, each change audited.

The API's routes and the dashboard's pages both call these, after the gate admitted them.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.errors import NotFound, ValidationFailed
from kavach.server.oidc.fetch import allowed_scheme
from kavach.server.workload import service
from kavach.server.workload.models import WorkloadTrust
from kavach.server.workload.schemas import TrustCreate, TrustDeleted, TrustPublic

HTTPS_ONLY = "must be an https URL"


async def create(
    session: AsyncSession,
    access: Access,
    origin: RequestOrigin,
    body: TrustCreate,
    *,
    private_allowed: bool,
) -> WorkloadTrust:
    """Trust an issuer's tokens whose claims match the conditions, with a role here."""
    if not allowed_scheme(body.issuer, allow_private=private_allowed):
        # Said as a schema refusal is: the setting is the server's, not the schema's.
        raise ValidationFailed(
            f"invalid request: issuer: {HTTPS_ONLY}",
            data={"errors": [{"field": "body.issuer", "message": HTTPS_ONLY}]},
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
    return trust


async def found(session: AsyncSession, access: Access, trust_id: str) -> WorkloadTrust:
    """Return one of the admitted environment's trusts by id, else NotFound."""
    try:
        wanted = uuid.UUID(trust_id)
    except ValueError:
        raise NotFound("workload trust not found") from None
    trust = await service.get(session, environment_id=access.environment_id, trust_id=wanted)
    if trust is None:
        raise NotFound("workload trust not found")
    return trust


async def delete(
    session: AsyncSession, access: Access, origin: RequestOrigin, trust_id: str
) -> TrustDeleted:
    """Delete a trust and the tokens it issued, which stop working at once."""
    trust = await found(session, access, trust_id)
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
    return TrustDeleted(**public.model_dump(), tokens_deleted=deleted)
