"""HTTP routes of the audit trail: a scope's events, and the check of an organization's chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import reading
from kavach.server.audit.filters import EventFilter
from kavach.server.audit.schemas import AuditEventPublic, AuditVerification
from kavach.server.deps import PrincipalDep, SessionDep
from kavach.server.errors import ValidationFailed
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac.deps import Requirement, ResourceKind

router = api_router(prefix=f"{API_PREFIX}/audit", tags=["audit"])

ScopeId = Annotated[str | None, Query(json_schema_extra={"format": "uuid"})]
_SCOPES: tuple[tuple[str, ResourceKind], ...] = (
    ("organization_id", "organization"),
    ("secret_group_id", "secret_group"),
    ("environment_id", "environment"),
)


class ScopeRequirement(Requirement):
    """An action on whichever one of organization_id, secret_group_id, environment_id is given."""

    def __init__(self, action: str) -> None:
        # No fixed resource: each request names its scope; the three ids are declared below.
        super().__init__(action)

    def __repr__(self) -> str:
        return f"ScopeRequirement({self.action!r})"

    async def __call__(
        self,
        request: Request,
        principal: PrincipalDep,
        session: SessionDep,
        organization_id: ScopeId = None,
        secret_group_id: ScopeId = None,
        environment_id: ScopeId = None,
        **_declared: str,
    ) -> Access:
        """Check the action on the one scope the query names."""
        given = (organization_id, secret_group_id, environment_id)
        named = [where for where, value in zip(_SCOPES, given, strict=True) if value is not None]
        if len(named) != 1:
            raise ValidationFailed(
                "give exactly one of organization_id, secret_group_id, environment_id"
            )
        param, kind = named[0]
        check = Requirement(self.action, kind, param=param, source="query")
        return await check(request, principal, session)


@router.get("", response_model=Envelope[Page[AuditEventPublic]])
async def list_audit_events(
    access: Annotated[Access, Depends(ScopeRequirement("audit.read"))],
    session: SessionDep,
    page: PageDep,
    filters: Annotated[EventFilter, Query()],
) -> Envelope[Page[AuditEventPublic]]:
    """List the events of an organization, secret group or environment and all below it.

    Narrowed, if asked, to who acted, the action (or its start, `secret.`) and a time range.
    """
    scope = access.scope
    assert scope is not None  # noqa: S101 - a scoped requirement always has one
    return ok(await reading.events_page(session, scope, filters, page))


@router.get("/verify", response_model=Envelope[AuditVerification])
async def verify_audit_chain(
    access: Annotated[
        Access,
        Depends(Requirement("audit.read", "organization", param="organization_id", source="query")),
    ],
    session: SessionDep,
) -> Envelope[AuditVerification]:
    """Recompute the organization's chain of events and report the first broken link."""
    assert access.scope is not None  # noqa: S101
    return ok(await reading.verification(session, access.scope.organization_id))
