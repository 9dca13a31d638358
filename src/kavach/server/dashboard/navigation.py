"""The dashboard's navigation: organizations, their secret groups, their environments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kavach.server.access import Access
from kavach.server.dashboard.common import (
    PREFIX,
    listing,
    next_url,
    resource_context,
)
from kavach.server.dashboard.pages import page, row_of
from kavach.server.deps import SessionDep
from kavach.server.iam import visibility as seen
from kavach.server.iam.models import Organization, SecretGroup
from kavach.server.rbac.deps import Requirement

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def searched(name: str | None) -> str | None:
    """Return what the search box asks for (None: nothing), as long as a name can be."""
    # No name holds a control character (and PostgreSQL text cannot hold NUL).
    kept = "".join(ch for ch in (name or "") if ch >= " " and ch != "\x7f")
    return kept.strip()[:63] or None


@router.get("/", response_class=HTMLResponse)
async def organizations(
    request: Request,
    access: Annotated[Access, Depends(Requirement("org.list"))],
    session: SessionDep,
    name: str | None = None,
) -> HTMLResponse:
    """The organizations the caller sees, those whose name holds `name` if given."""
    query = searched(name)
    found, after = await seen.organizations(
        session, access.user.user.id, listing(request), containing=query
    )
    rows = [row_of(item.row, item.role, f"{PREFIX}/organizations/{item.row.id}") for item in found]
    return page(
        request,
        access,
        "dashboard/organizations.html",
        title="Organizations",
        items=rows,
        query=query,
        next_url=next_url(request, after),
    )


@router.get("/organizations/{id}", response_class=HTMLResponse)
async def organization(
    request: Request,
    access: Annotated[Access, Depends(Requirement("group.read", "organization"))],
    session: SessionDep,
    name: str | None = None,
) -> HTMLResponse:
    """An organization's secret groups the caller sees, those whose name holds `name` if given."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101 - the requirement loads it
    query = searched(name)
    found, after = await seen.secret_groups(
        session, access.user.user.id, org.id, listing(request), containing=query
    )
    rows = [row_of(item.row, item.role, f"{PREFIX}/secret-groups/{item.row.id}") for item in found]
    return page(
        request,
        access,
        "dashboard/children.html",
        **await resource_context(session, access),
        kind_plural="secret groups",
        parent_kind="organization",
        items=rows,
        query=query,
        next_url=next_url(request, after),
    )


@router.get("/secret-groups/{id}", response_class=HTMLResponse)
async def secret_group(
    request: Request,
    access: Annotated[Access, Depends(Requirement("env.read", "secret_group"))],
    session: SessionDep,
    name: str | None = None,
) -> HTMLResponse:
    """A secret group's environments the caller sees, those whose name holds `name` if given."""
    group, scope = access.resource, access.scope
    assert isinstance(group, SecretGroup)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    query = searched(name)
    found, after = await seen.environments(
        session, access.user.user.id, scope, listing(request), containing=query
    )
    rows = [row_of(item.row, item.role, f"{PREFIX}/environments/{item.row.id}/") for item in found]
    return page(
        request,
        access,
        "dashboard/children.html",
        **await resource_context(session, access),
        kind_plural="environments",
        parent_kind="secret group",
        items=rows,
        query=query,
        next_url=next_url(request, after),
    )
