"""An environment's history: versions, the names two of them differ by, rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from kavach.server.access import Access
from kavach.server.dashboard.common import (
    PREFIX,
    READ,
    WRITE,
    environment_context,
    listing,
    next_url,
)
from kavach.server.dashboard.pages import Crumb, page
from kavach.server.deps import OriginDep, SessionDep, runtime_of
from kavach.server.errors import ValidationFailed
from kavach.server.iam.models import Environment
from kavach.server.rbac.deps import Requirement
from kavach.server.secrets import service as secrets_service
from kavach.server.secrets.flows import summary

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/environments/{id}/history", response_class=HTMLResponse)
async def history(
    request: Request,
    access: Annotated[Access, Depends(Requirement(READ, "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> HTMLResponse:
    """Versions newest first; the names two of them differ by; rollback for writers."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    versions, after = await secrets_service.list_versions(
        session, environment_id=env.id, request=listing(request)
    )
    picked = {k: request.query_params.get(k) for k in ("from", "to")}
    compared = None
    if picked["to"]:
        compared = await runtime_of(request).secrets.diff(
            session,
            access,
            origin,
            from_id=picked["from"] or None,
            to_id=picked["to"],
            reveal=False,  # names only: values are revealed one at a time, audited
        )
    context = await environment_context(session, access, env, tab="history")
    context["crumbs"].append(Crumb("History", request.url.path))
    return page(
        request,
        access,
        "dashboard/history.html",
        **context,
        versions=[summary(v) for v in versions],
        compared=compared,
        rollback_url=f"{PREFIX}/environments/{env.id}/rollback",
        next_url=next_url(request, after),
    )


@router.post("/environments/{id}/rollback", response_class=HTMLResponse)
async def rollback(
    request: Request,
    access: Annotated[Access, Depends(Requirement(WRITE, "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Make a new version equal to an older one, with a message."""
    form = await request.form()
    version_id = str(form.get("version_id") or "")
    message = str(form.get("message") or "").strip()
    if not version_id or not message:
        raise ValidationFailed("a rollback needs the version and a commit message")
    await runtime_of(request).secrets.rollback(
        session, access, origin, version_id=version_id, message=message[:500]
    )
    target = f"{PREFIX}/environments/{access.environment_id}/history"
    return Response(status_code=204, headers={"HX-Redirect": target})
