"""Who holds which role on an environment, and who is invited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kavach.server.access import Access
from kavach.server.dashboard.common import (
    PREFIX,
    environment_context,
    listing,
    next_url,
)
from kavach.server.dashboard.pages import Crumb, page
from kavach.server.deps import SessionDep
from kavach.server.iam.models import Environment
from kavach.server.pages import PageRequest
from kavach.server.rbac import members, pending
from kavach.server.rbac.deps import Requirement

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/environments/{id}/access", response_class=HTMLResponse)
async def environment_access(
    request: Request,
    access: Annotated[Access, Depends(Requirement("members.read", "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """Who holds which role here: direct, or inherited from the group or organization."""
    env, scope = access.resource, access.scope
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    held = await members.describe(session, scope=scope, request=listing(request))
    invited = await pending.describe(session, scope=scope, request=PageRequest(limit=100))
    context = await environment_context(session, access, env, tab="access")
    context["crumbs"].append(Crumb("Access", request.url.path))
    return page(
        request,
        access,
        "dashboard/access.html",
        **context,
        members=held.items,
        invites=invited.items,
        next_url=next_url(request, held.next),
    )
