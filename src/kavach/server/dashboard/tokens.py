"""An environment's service tokens: listed, made (shown once) and revoked."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kavach.server.access import Access
from kavach.server.auth import token_flows
from kavach.server.auth.schemas import ServiceTokenCreate, ServiceTokenPublic
from kavach.server.dashboard.common import (
    PREFIX,
    environment_context,
    listing,
    may,
    next_url,
)
from kavach.server.dashboard.pages import Crumb, fragment, page
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.errors import Conflict, ValidationFailed
from kavach.server.iam.models import Environment
from kavach.server.rbac.deps import Requirement
from kavach.server.wording import in_words

router = APIRouter(prefix=PREFIX, include_in_schema=False)
# A number a form may send: a few ASCII digits (str.isdigit also takes '²').
WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")


TOKEN_DAYS = (1, 7, 30, 90)


@router.get("/environments/{id}/tokens", response_class=HTMLResponse)
async def tokens(
    request: Request,
    access: Annotated[Access, Depends(Requirement("token.read", "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """The environment's service tokens (workloads' included), and a form to make one."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    found, after = await token_flows.page_of(session, env.id, listing(request), None)
    context = await environment_context(session, access, env, tab="tokens")
    context["crumbs"].append(Crumb("Tokens", request.url.path))
    return page(
        request,
        access,
        "dashboard/tokens.html",
        **context,
        tokens=[ServiceTokenPublic.model_validate(t) for t in found],
        can_create=may(access, "token.create"),
        can_revoke=may(access, "token.revoke"),
        days=TOKEN_DAYS,
        next_url=next_url(request, after),
    )


@router.post("/environments/{id}/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    access: Annotated[Access, Depends(Requirement("token.create", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Make a token and show its secret this once."""
    form = await request.form()
    days = str(form.get("days") or "30")
    try:
        body = ServiceTokenCreate(
            name=str(form.get("name") or ""),
            role=str(form.get("role") or "viewer"),
            expires_in=int(days) * 86_400 if WHOLE_NUMBER.fullmatch(days) else 0,
        )
    except ValidationError as error:
        return fragment(
            "dashboard/token_made.html", status_code=422, problem=in_words(error.errors())
        )
    try:
        token, secret = await token_flows.create(session, access, origin, body)
    except (Conflict, ValidationFailed) as refused:
        # Said in the form's place, as a validation problem is; nothing of it is kept.
        await session.rollback()
        status = 409 if isinstance(refused, Conflict) else 422
        return fragment("dashboard/token_made.html", status_code=status, problem=refused.message)
    return fragment("dashboard/token_made.html", token=token, secret=secret)


@router.post("/environments/{id}/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(
    token_id: str,
    access: Annotated[Access, Depends(Requirement("token.revoke", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Revoke a token; it stops working at once."""
    await token_flows.revoke(session, access, origin, token_id)
    return Response(status_code=204, headers={"HX-Refresh": "true"})
