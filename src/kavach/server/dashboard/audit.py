"""The audit trail of an organization, secret group or environment: filtered, paged, verified."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access
from kavach.server.audit import reading
from kavach.server.audit.filters import EventFilter
from kavach.server.audit.schemas import AuditEventPublic
from kavach.server.dashboard.common import (
    PREFIX,
    environment_context,
    listing,
    next_url,
    resource_context,
)
from kavach.server.dashboard.pages import Crumb, fragment, page
from kavach.server.deps import SessionDep
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.rbac.deps import Requirement
from kavach.server.wording import in_words

router = APIRouter(prefix=PREFIX, include_in_schema=False)
AUDIT = "audit.read"
FILTERS = ("actor", "action", "since", "before")
_FORM_TIME = "%Y-%m-%dT%H:%M:%S"  # what <input type="datetime-local"> shows and sends
_CHAIN_WORDS = {"chained": "on chain", "legacy": "before chaining", "unchained": "off chain"}
_LONGEST, _FIELDS, _ITEMS = 80, 6, 5  # a value's length, details and a list's items shown


@dataclass(frozen=True)
class Shown:
    """One event as a row of the page shows it."""

    event: AuditEventPublic
    place: str  # where, below the page's own level ("" when it is the page's own)
    details: str
    chain: str
    actor_url: str | None
    action_url: str


@router.get("/organizations/{id}/audit", response_class=HTMLResponse)
async def organization_audit(
    request: Request,
    access: Annotated[Access, Depends(Requirement(AUDIT, "organization"))],
    session: SessionDep,
) -> HTMLResponse:
    """An organization's events and everything in it; its chain verified on request."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101 - the requirement loads it
    context = {**await resource_context(session, access, "/audit"), "kind": "organization"}
    verify_url = f"{PREFIX}/organizations/{org.id}/audit/verify"
    return await _trail(request, access, session, context, verify_url=verify_url)


@router.get("/secret-groups/{id}/audit", response_class=HTMLResponse)
async def secret_group_audit(
    request: Request,
    access: Annotated[Access, Depends(Requirement(AUDIT, "secret_group"))],
    session: SessionDep,
) -> HTMLResponse:
    """A secret group's events and its environments'."""
    context = {**await resource_context(session, access, "/audit"), "kind": "secret group"}
    return await _trail(request, access, session, context)


@router.get("/environments/{id}/audit", response_class=HTMLResponse)
async def environment_audit(
    request: Request,
    access: Annotated[Access, Depends(Requirement(AUDIT, "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """An environment's events."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    context = await environment_context(session, access, env, tab="audit")
    context["kind"] = "environment"
    return await _trail(request, access, session, context)


@router.get("/organizations/{id}/audit/verify", response_class=HTMLResponse)
async def verify(
    access: Annotated[Access, Depends(Requirement(AUDIT, "organization"))],
    session: SessionDep,
) -> HTMLResponse:
    """The organization's chain recomputed: intact, or where it first breaks and why."""
    assert access.scope is not None  # noqa: S101
    report = await reading.verification(session, access.scope.organization_id)
    return fragment("dashboard/audit_verified.html", report=report)


async def _trail(
    request: Request,
    access: Access,
    session: AsyncSession,
    context: dict[str, Any],
    *,
    verify_url: str | None = None,
) -> HTMLResponse:
    """Draw a scope's page: the filter form, the events it lets through, the next page's link."""
    scope = access.scope
    assert scope is not None  # noqa: S101 - a scoped requirement always has one
    context["crumbs"].append(Crumb("Audit trail", request.url.path))
    context.update(
        title=f"Audit trail of {context['heading']}",
        verify_url=verify_url,
        clear_url=request.url.path,
    )
    typed = {name: request.query_params.get(name, "") for name in FILTERS}
    try:
        # A form sends its empty fields too: those are not filters.
        filters = EventFilter.model_validate({k: v.strip() for k, v in typed.items() if v.strip()})
    except ValidationError as error:
        problem = f"Not filtered: {in_words(error.errors())}"
        return page(
            request,
            access,
            "dashboard/audit.html",
            status_code=422,
            **context,
            form=typed,
            problem=problem,
        )
    found = await reading.events_page(session, scope, filters, listing(request))
    # Rows name their group and environment, unless the page is that group's or environment's.
    below = (scope.secret_group_id is None, scope.environment_id is None)
    names = await _names(session, found.items)
    rows = [_shown(request, event, names, below) for event in found.items]
    return page(
        request,
        access,
        "dashboard/audit.html",
        **context,
        form=_form(filters),
        narrowed=filters.narrows,
        events=rows,
        next_url=next_url(request, found.next),
    )


def _form(filters: EventFilter) -> dict[str, str]:
    """The filter's fields as the form shows them (times as a datetime-local input takes)."""
    since, before = filters.since, filters.before
    return {
        "actor": filters.actor or "",
        "action": filters.action or "",
        "since": since.strftime(_FORM_TIME) if since else "",
        "before": before.strftime(_FORM_TIME) if before else "",
    }


async def _names(session: AsyncSession, events: list[AuditEventPublic]) -> dict[uuid.UUID, str]:
    """The names of the groups and environments the events happened in (deleted ones lack one)."""
    groups = {e.secret_group_id for e in events if e.secret_group_id is not None}
    envs = {e.environment_id for e in events if e.environment_id is not None}
    names: dict[uuid.UUID, str] = {}
    if groups:
        found = await session.execute(
            select(SecretGroup.id, SecretGroup.name).where(SecretGroup.id.in_(groups))
        )
        names.update({row[0]: row[1] for row in found})
    if envs:
        found = await session.execute(
            select(Environment.id, Environment.name).where(Environment.id.in_(envs))
        )
        names.update({row[0]: row[1] for row in found})
    return names


def _shown(
    request: Request,
    event: AuditEventPublic,
    names: dict[uuid.UUID, str],
    below: tuple[bool, bool],
) -> Shown:
    """Describe an event for its row, with links that narrow the listing to its actor or action."""
    steps = [
        names.get(where, "(deleted)")
        for where, shown in zip((event.secret_group_id, event.environment_id), below, strict=True)
        if shown and where is not None
    ]
    chain = _CHAIN_WORDS[event.chain_status]
    if event.chain_status == "chained" and event.seq is not None:
        chain = f"{chain} #{event.seq}"
    return Shown(
        event=event,
        place=" / ".join(steps),
        details=summarized(event.details),
        chain=chain,
        actor_url=_narrowed(request, actor=event.actor_label) if event.actor_label else None,
        action_url=_narrowed(request, action=event.action),
    )


def _narrowed(request: Request, **more: str | None) -> str:
    """The address of this listing's first page with one more filter set."""
    # The other filters as the request gave them (to the microsecond, unlike the form).
    query = {name: value for name in FILTERS if (value := request.query_params.get(name))}
    query.update({name: value for name, value in more.items() if value})
    return f"{request.url.path}?{urlencode(query)}"


def summarized(details: dict[str, Any]) -> str:
    """Say an event's details in one short line: a few fields, long values cut."""
    said = [f"{key}: {_short(value)}" for key, value in list(details.items())[:_FIELDS]]
    if len(details) > _FIELDS:
        said.append(f"and {len(details) - _FIELDS} more")
    return "; ".join(said)


def _short(value: Any) -> str:
    if isinstance(value, list):
        text = ", ".join(str(item) for item in value[:_ITEMS]) or "none"
        text += f" and {len(value) - _ITEMS} more" if len(value) > _ITEMS else ""
    elif isinstance(value, dict):
        text = "{" + ", ".join(str(key) for key in list(value)[:_ITEMS]) + "}"
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 1] + "…"
