"""An environment's workload identities (trusts): listed, made and deleted.

The same use cases as the API's routes (`workload.trusts`, `workload.service`), under the
same actions (`trust.read|create|delete`, admin).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.datastructures import FormData
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kavach.server.access import Access
from kavach.server.dashboard.common import PREFIX, environment_context, listing, may, next_url
from kavach.server.dashboard.pages import Crumb, fragment, page
from kavach.server.dashboard.tokens import WHOLE_NUMBER
from kavach.server.db.base import utcnow
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.errors import AlreadyExists, ValidationFailed
from kavach.server.iam.models import Environment
from kavach.server.rbac.deps import Requirement
from kavach.server.wording import in_words
from kavach.server.workload import service, trusts
from kavach.server.workload.schemas import (
    DEFAULT_TTL_SECONDS,
    MAX_CONDITIONS,
    TrustCreate,
    TrustPublic,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# Token lifetimes offered, in minutes (the schema allows 1 to 60).
TTL_MINUTES = (5, 15, 30, 60)
CONDITION_ROWS = 3
FORM = "dashboard/trust_form.html"


@router.get("/environments/{id}/trusts", response_class=HTMLResponse)
async def workload_trusts(
    request: Request,
    access: Annotated[Access, Depends(Requirement("trust.read", "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """The environment's trusts, the tokens in force through each, and a form to make one."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    found, after = await service.list_page(
        session, environment_id=env.id, request=listing(request), name=None
    )
    live = await service.live_tokens(session, [trust.id for trust in found], utcnow())
    context = await environment_context(session, access, env, tab="trusts")
    context["crumbs"].append(Crumb("Workload identities", request.url.path))
    return page(
        request,
        access,
        "dashboard/trusts.html",
        **context,
        trusts=[(TrustPublic.model_validate(trust), live.get(trust.id, 0)) for trust in found],
        can_create=may(access, "trust.create"),
        can_delete=may(access, "trust.delete"),
        next_url=next_url(request, after),
        **_form_context(),
    )


@router.post("/environments/{id}/trusts", response_class=HTMLResponse)
async def create_trust(
    request: Request,
    access: Annotated[Access, Depends(Requirement("trust.create", "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Make a trust; a refusal keeps the form's fields and says what is wrong."""
    form = await request.form()
    kept = _kept(form)
    conditions, problem = _conditions(kept["conditions"])
    if problem is not None:
        return fragment(FORM, status_code=422, **_form_context(kept, problem=problem))
    try:
        body = TrustCreate(
            name=kept["name"],
            issuer=kept["issuer"],
            audience=kept["audience"],
            conditions=conditions,
            role=kept["role"],
            token_ttl_seconds=int(kept["ttl"]) * 60 if WHOLE_NUMBER.fullmatch(kept["ttl"]) else 0,
        )
    except ValidationError as error:
        problem = in_words(error.errors())
        return fragment(FORM, status_code=422, **_form_context(kept, problem=problem))
    private_allowed = runtime.settings.private_targets_allowed
    try:
        trust = await trusts.create(session, access, origin, body, private_allowed=private_allowed)
    except ValidationFailed as refused:
        problem = refused.message.removeprefix("invalid request: ")
        return fragment(FORM, status_code=422, **_form_context(kept, problem=problem))
    except AlreadyExists as taken:
        await session.rollback()  # a name taken meanwhile fails the flush: nothing to keep
        return fragment(FORM, status_code=409, **_form_context(kept, problem=taken.message))
    response = fragment(FORM, **_form_context(made=trust.name))
    # The list below the form changed: reload the page to show the new trust.
    response.headers["HX-Refresh"] = "true"
    return response


@router.post("/environments/{id}/trusts/{trust_id}/delete", response_class=HTMLResponse)
async def delete_trust(
    trust_id: str,
    access: Annotated[Access, Depends(Requirement("trust.delete", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Delete a trust and the tokens it issued; its row says so in its place."""
    deleted = await trusts.delete(session, access, origin, trust_id)
    return fragment("dashboard/trust_deleted.html", trust=deleted)


def _kept(form: FormData) -> dict[str, Any]:
    """Return the form's fields as submitted, to validate and to show again if refused."""
    claims, patterns = form.getlist("claim"), form.getlist("pattern")
    rows = [(str(c).strip(), str(p)) for c, p in zip(claims, patterns, strict=False)]
    return {
        "name": str(form.get("name") or "").strip(),
        "issuer": str(form.get("issuer") or "").strip(),
        "audience": str(form.get("audience") or "").strip(),
        "conditions": [(c, p) for c, p in rows if c or p][: MAX_CONDITIONS + 1],
        "role": str(form.get("role") or "viewer"),
        "ttl": str(form.get("ttl") or DEFAULT_TTL_SECONDS // 60),
    }


def _conditions(rows: list[tuple[str, str]]) -> tuple[dict[str, str], str | None]:
    """Return the conditions the rows give, or what is wrong with them in words."""
    found: dict[str, str] = {}
    for claim, pattern in rows:
        if not claim:
            return found, "conditions: a value or pattern is given without its claim's name"
        if claim in found:
            return found, f"conditions: claim {claim[:64]} is given twice"
        found[claim] = pattern
    return found, None


def _form_context(kept: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Return what the form shows: the fields kept (else defaults) and blank condition rows."""
    fields = kept or {
        "name": "",
        "issuer": "",
        "audience": "",
        "conditions": [],
        "role": "viewer",
        "ttl": str(DEFAULT_TTL_SECONDS // 60),
    }
    rows = list(fields["conditions"])
    blanks = [("", "")] * max(CONDITION_ROWS - len(rows), 1)
    return {
        "fields": fields,
        "condition_rows": [*rows, *blanks],
        "ttl_minutes": TTL_MINUTES,
        "trusts_url": "trusts",
        **more,
    }
