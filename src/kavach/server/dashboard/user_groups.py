"""An organization's user groups, listed and created; a group's members, added and removed.

Each change is the API's use case (`iam.user_group_usecases`), under the same requirements
as the user-group routes, with the same audit events; a refusal is said in words.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ORGANIZATION, Access, RequestOrigin
from kavach.server.dashboard.common import (
    PREFIX,
    listing,
    may,
    next_url,
    node_tabs,
    resource_url,
)
from kavach.server.dashboard.outcome import Notice, attempt, done, invalid
from kavach.server.dashboard.pages import Crumb, fragment, page
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam import user_group_usecases as usecases
from kavach.server.iam import user_groups
from kavach.server.iam.models import Organization, UserGroup
from kavach.server.iam.schemas import MemberChange, ResourceCreate
from kavach.server.pages import PageRequest
from kavach.server.rbac.deps import Requirement

router = APIRouter(prefix=PREFIX, include_in_schema=False)
GROUPS, MEMBERS = "dashboard/user_groups_list.html", "dashboard/user_groups_members.html"


def _org(access: Access) -> Organization:
    assert isinstance(access.resource, Organization)  # noqa: S101 - the requirement loads it
    return access.resource


def _groups_url(org_id: object) -> str:
    return f"{resource_url(ORGANIZATION, org_id)}/user-groups"


async def _groups(
    session: AsyncSession,
    access: Access,
    *,
    request: PageRequest | None = None,
    notice: Notice | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The organization's user groups, and the form to create one for those who may."""
    org = _org(access)
    found = await user_groups.list_in(
        session, organization_id=org.id, request=request or PageRequest(limit=50)
    )
    return {
        "groups": found.items,
        "after": found.next,
        "groups_url": _groups_url(org.id),
        "can_create": may(access, "user_group.create"),
        "notice": notice,
        "form": form or {},
    }


@router.get("/organizations/{id}/user-groups", response_class=HTMLResponse)
async def list_user_groups(
    request: Request,
    access: Annotated[Access, Depends(Requirement("user_group.read", "organization"))],
    session: SessionDep,
) -> HTMLResponse:
    """An organization's user groups, by name; a form to create one for admins."""
    org = _org(access)
    context = await _groups(session, access, request=listing(request))
    crumbs = [Crumb(org.name, resource_url(ORGANIZATION, org.id))]
    return page(
        request,
        access,
        "dashboard/user_groups.html",
        title=f"User groups of {org.name}",
        heading=org.name,
        crumbs=[*crumbs, Crumb("User groups", request.url.path)],
        node_tabs=node_tabs(access, ORGANIZATION, org.id, "/user-groups"),
        next_url=next_url(request, context.pop("after")),
        **context,
    )


@router.post("/organizations/{id}/user-groups", response_class=HTMLResponse)
async def create_user_group(
    request: Request,
    access: Annotated[Access, Depends(Requirement("user_group.create", "organization"))],
    session: SessionDep,
    origin: OriginDep,
) -> HTMLResponse:
    """Create a user group in the organization."""
    form = await request.form()
    fields = {key: str(form.get(key) or "").strip() for key in ("name", "description")}
    try:
        body = ResourceCreate(name=fields["name"], description=fields["description"] or None)
    except ValidationError as error:
        return await _groups_answer(session, access, invalid("created", error), fields)
    made = await attempt(session, "created", lambda: usecases.create(session, access, origin, body))
    if isinstance(made, Notice):
        return await _groups_answer(session, access, made, fields)
    return await _groups_answer(session, access, done(f"User group {made.name} created."))


async def _groups_answer(
    session: AsyncSession, access: Access, notice: Notice, form: dict[str, str] | None = None
) -> HTMLResponse:
    context = await _groups(session, access, notice=notice, form=form)
    context.pop("after")
    return fragment(GROUPS, status_code=notice.status, **context)


async def _members(
    session: AsyncSession,
    access: Access,
    *,
    request: PageRequest | None = None,
    notice: Notice | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A user group's members, and the controls for those who may change them."""
    group = usecases.group_of(access)
    found = await user_groups.members(
        session, group=group, request=request or PageRequest(limit=50)
    )
    return {
        "members": found.items,
        "after": found.next,
        "group_url": f"{PREFIX}/user-groups/{group.id}",
        "group_name": group.name,
        "can_manage": may(access, "user_group.members"),
        "notice": notice,
        "form": form or {},
    }


@router.get("/user-groups/{id}", response_class=HTMLResponse)
async def user_group(
    request: Request,
    access: Annotated[Access, Depends(Requirement("user_group.read", "user_group"))],
    session: SessionDep,
) -> HTMLResponse:
    """A user group's members, by login; add and remove them for admins."""
    group = usecases.group_of(access)
    org = await session.get(Organization, group.organization_id)
    context = await _members(session, access, request=listing(request))
    crumbs = [
        Crumb(org.name if org else "?", resource_url(ORGANIZATION, group.organization_id)),
        Crumb("User groups", _groups_url(group.organization_id)),
        Crumb(group.name, request.url.path),
    ]
    return page(
        request,
        access,
        "dashboard/user_groups_group.html",
        title=group.name,
        heading=group.name,
        description=group.description,
        crumbs=crumbs,
        next_url=next_url(request, context.pop("after")),
        **context,
    )


@router.post("/user-groups/{id}/members", response_class=HTMLResponse)
async def add_member(
    request: Request,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> HTMLResponse:
    """Add a user, by login, to the group."""
    return await _change_member(request, access, session, origin, adding=True)


@router.post("/user-groups/{id}/members/remove", response_class=HTMLResponse)
async def remove_member(
    request: Request,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> HTMLResponse:
    """Remove a user, by login, from the group."""
    return await _change_member(request, access, session, origin, adding=False)


async def _change_member(
    request: Request,
    access: Access,
    session: AsyncSession,
    origin: RequestOrigin,
    *,
    adding: bool,
) -> HTMLResponse:
    what = "added" if adding else "removed"
    login = str((await request.form()).get("user") or "").strip()
    kept = {"user": login} if adding else None
    try:
        body = MemberChange(user=login)
    except ValidationError as error:
        return await _members_answer(session, access, invalid(what, error), kept)
    change = usecases.add_member if adding else usecases.remove_member
    changed = await attempt(session, what, lambda: change(session, access, origin, body.user))
    if isinstance(changed, Notice):
        return await _members_answer(session, access, changed, kept)
    group: UserGroup = usecases.group_of(access)
    said = f"Added {body.user} to" if adding else f"Removed {body.user} from"
    return await _members_answer(session, access, done(f"{said} {group.name}."))


async def _members_answer(
    session: AsyncSession, access: Access, notice: Notice, form: dict[str, str] | None = None
) -> HTMLResponse:
    context = await _members(session, access, notice=notice, form=form)
    context.pop("after")
    return fragment(MEMBERS, status_code=notice.status, **context)
