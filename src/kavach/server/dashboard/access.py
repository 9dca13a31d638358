"""Who holds which role on an organization, secret group or environment, and who is invited.

Those who may grant get a form to grant a role (or invite someone who has not signed in
yet), and buttons to revoke a direct role or withdraw an invite. Each change is the API's
use case (`rbac.usecases`): the same rules, the same audit events; a refusal is said in
words and changes nothing.

No `from __future__ import annotations` here: the routes are built in a loop and their
annotations must be evaluated while the loop variable is in scope.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access
from kavach.server.dashboard import access_view as view
from kavach.server.dashboard.common import PATHS, PREFIX, listing
from kavach.server.dashboard.outcome import Notice, attempt, done, invalid
from kavach.server.dashboard.pages import fragment, page
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam.models import User, UserGroup
from kavach.server.rbac import usecases
from kavach.server.rbac.deps import Requirement, ResourceKind
from kavach.server.rbac.models import RoleBinding
from kavach.server.rbac.schemas import BindingPublic, Grant, Invitee, PendingGrantPublic, Revoke

router = APIRouter(prefix=PREFIX, include_in_schema=False)
BODY = "dashboard/access_body.html"


def _form_fields(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    """Return the named fields a form filled in, trimmed."""
    fields = {name: str(form.get(name) or "").strip() for name in names}
    return {name: value for name, value in fields.items() if value}


def _grant_body(fields: dict[str, str]) -> Grant:
    """Read the grant form: a login or an address (by its '@'), or a user group; a role."""
    who, group = fields.get("who"), fields.get("user_group")
    body: dict[str, str] = {"role": fields.get("role", "")}
    if who:
        body["email" if "@" in who else "user"] = who
    if group:
        body["user_group"] = group
    return Grant.model_validate(body)


def _said(granted: BindingPublic | PendingGrantPublic) -> str:
    """Say what a grant did."""
    if isinstance(granted, PendingGrantPublic):
        invitee = granted.login or granted.email
        return f"Invited {invitee} as {granted.role}: the role applies when they sign in."
    if granted.user is not None:
        return f"{granted.user.login} now holds {granted.role} here."
    group = granted.user_group.name if granted.user_group else "?"
    return f"User group {group} now holds {granted.role} here."


async def _subject_name(session: AsyncSession, removed: RoleBinding) -> str:
    """Name whom a revoked role was held by."""
    if removed.user_id is not None:
        user = await session.get(User, removed.user_id)
        return user.login if user else "?"
    group = await session.get(UserGroup, removed.user_group_id)
    return f"user group {group.name if group else '?'}"


async def _answer(
    session: AsyncSession, access: Access, notice: Notice, form: dict[str, str] | None = None
) -> HTMLResponse:
    """Draw the lists again, as they now are, with what came of the change."""
    context = await view.lists(session, access, notice=notice, form=form)
    return fragment(BODY, status_code=notice.status, **context)


def _add_access_routes(kind: ResourceKind) -> None:
    """Register the access page of one kind of resource, and its three changes."""
    reader = Requirement("members.read", kind)
    granter = Requirement("members.grant", kind)

    async def show(
        request: Request, access: Annotated[Access, Depends(reader)], session: SessionDep
    ) -> HTMLResponse:
        """Who holds which role here (direct, or inherited from above) and who is invited."""
        frame = await view.frame(session, access)
        lists = await view.lists(session, access, cursor=listing(request).cursor)
        return page(request, access, "dashboard/access.html", **frame, **lists)

    async def grant(
        request: Request,
        access: Annotated[Access, Depends(granter)],
        session: SessionDep,
        origin: OriginDep,
    ) -> HTMLResponse:
        """Grant a role to a user or user group, or invite a login or an e-mail address."""
        fields = _form_fields(await request.form(), ("who", "user_group", "role"))
        if fields.get("who") and fields.get("user_group"):
            notice = Notice("bad", "Not granted: give a login or an address, or a group.", 422)
            return await _answer(session, access, notice, fields)
        try:
            body = _grant_body(fields)
        except ValidationError as error:
            return await _answer(session, access, invalid("granted", error), fields)
        granted = await attempt(
            session, "granted", lambda: usecases.grant(session, access, origin, body)
        )
        if isinstance(granted, Notice):
            return await _answer(session, access, granted, fields)
        return await _answer(session, access, done(_said(granted)))

    async def revoke(
        request: Request,
        access: Annotated[Access, Depends(granter)],
        session: SessionDep,
        origin: OriginDep,
    ) -> HTMLResponse:
        """Take a user's or user group's role here away."""
        fields = _form_fields(await request.form(), ("user", "user_group", "role"))
        try:
            body = Revoke.model_validate(fields)
        except ValidationError as error:
            return await _answer(session, access, invalid("revoked", error))
        removed = await attempt(
            session, "revoked", lambda: usecases.revoke(session, access, origin, body)
        )
        if isinstance(removed, Notice):
            return await _answer(session, access, removed)
        who = await _subject_name(session, removed)
        return await _answer(session, access, done(f"Revoked {removed.role} from {who}."))

    async def withdraw(
        request: Request,
        access: Annotated[Access, Depends(granter)],
        session: SessionDep,
        origin: OriginDep,
    ) -> HTMLResponse:
        """Withdraw an invite pending here."""
        fields = _form_fields(await request.form(), ("user", "email", "role"))
        try:
            body = Invitee.model_validate(fields)
        except ValidationError as error:
            return await _answer(session, access, invalid("withdrawn", error))
        removed = await attempt(
            session, "withdrawn", lambda: usecases.withdraw(session, access, origin, body)
        )
        if isinstance(removed, Notice):
            return await _answer(session, access, removed)
        return await _answer(session, access, done(f"Withdrew the invite of {removed.invitee}."))

    path = f"/{PATHS[kind]}/{{id}}/access"
    router.add_api_route(
        path, show, methods=["GET"], name=f"{kind}_access", response_class=HTMLResponse
    )
    for action, endpoint in (("grant", grant), ("revoke", revoke), ("withdraw", withdraw)):
        router.add_api_route(
            f"{path}/{action}",
            endpoint,
            methods=["POST"],
            name=f"{kind}_{action}",
            response_class=HTMLResponse,
        )


KINDS: tuple[ResourceKind, ...] = ("organization", "secret_group", "environment")
for _kind in KINDS:
    _add_access_routes(_kind)
