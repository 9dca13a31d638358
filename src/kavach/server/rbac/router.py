"""HTTP routes for members (role bindings) of organizations, secret groups and environments.

No `from __future__ import annotations` here: the routes are built in a loop and their
annotations must be evaluated while the loop variable is in scope.
"""

from typing import Annotated

from fastapi import Depends, Response

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam.schemas import Removed
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac import members, pending
from kavach.server.rbac.deps import Requirement, ResourceKind
from kavach.server.rbac.models import PendingGrant
from kavach.server.rbac.schemas import BindingPublic, Grant, Invitee, PendingGrantPublic, Revoke

router = api_router(prefix=API_PREFIX, tags=["members"])


def _subject_details(body: Grant | Revoke) -> dict[str, str | None]:
    return {"user": body.user, "user_group": body.user_group, "role": body.role}


def _invitee_details(grant: PendingGrant) -> dict[str, str]:
    who = "email" if grant.invitee_type == pending.EMAIL else "user"
    return {who: grant.invitee, "role": grant.role}


def _invitee(body: Invitee) -> pending.InviteeKey:
    if body.email is not None:
        return pending.email_invitee(body.email)
    return pending.login_invitee(body.user or "")


def _add_member_routes(path: str, kind: ResourceKind) -> None:
    """Register list, grant and revoke for one kind of resource."""

    async def list_members(
        access: Annotated[Access, Depends(Requirement("members.read", kind))],
        session: SessionDep,
        page: PageDep,
    ) -> Envelope[Page[BindingPublic]]:
        """List the roles held on this resource, direct and inherited, outermost first."""
        assert access.scope is not None  # noqa: S101
        return ok(await members.describe(session, scope=access.scope, request=page))

    async def grant_member(
        body: Grant,
        access: Annotated[Access, Depends(Requirement("members.grant", kind))],
        session: SessionDep,
        origin: OriginDep,
        response: Response,
    ) -> Envelope[BindingPublic | PendingGrantPublic]:
        """Give a user or user group a role here (or change the role it has).

        A login nobody has signed in with, or an e-mail address, gets a pending grant (202,
        `pending: true`) that becomes the role when that person signs in.
        """
        scope = access.scope
        assert scope is not None  # noqa: S101
        granted = await members.grant(
            session,
            scope=scope,
            subject=body,
            caller_role=access.role,
            caller_id=access.user.user.id,
        )
        if isinstance(granted, PendingGrant):
            await audit.record_request(
                session,
                access,
                origin,
                "member.invite",
                kind,
                scope.resource_id,
                **_invitee_details(granted),
            )
            response.status_code = 202
            return ok(await pending.describe_one(session, scope=scope, grant=granted))
        await audit.record(
            session,
            actor=access.principal.actor,
            action="member.grant",
            origin=origin,
            resource_type=kind,
            resource_id=str(scope.resource_id),
            details=_subject_details(body),
        )
        described = await members.describe_bindings(session, scope=scope, bindings=[granted])
        return ok(described[0])

    async def revoke_member(
        body: Revoke,
        access: Annotated[Access, Depends(Requirement("members.grant", kind))],
        session: SessionDep,
        origin: OriginDep,
    ) -> Envelope[Removed]:
        """Take a user's or user group's role here away."""
        scope = access.scope
        assert scope is not None  # noqa: S101
        removed = await members.revoke(
            session, scope=scope, subject=body, role=body.role, caller_role=access.role
        )
        await audit.record(
            session,
            actor=access.principal.actor,
            action="member.revoke",
            origin=origin,
            resource_type=kind,
            resource_id=str(scope.resource_id),
            details={**_subject_details(body), "role": removed.role},
        )
        return ok(Removed())

    async def list_pending(
        access: Annotated[Access, Depends(Requirement("members.read", kind))],
        session: SessionDep,
        page: PageDep,
    ) -> Envelope[Page[PendingGrantPublic]]:
        """List the grants pending here (not on the resources above), by invitee."""
        assert access.scope is not None  # noqa: S101
        return ok(await pending.describe(session, scope=access.scope, request=page))

    async def revoke_pending(
        body: Invitee,
        access: Annotated[Access, Depends(Requirement("members.grant", kind))],
        session: SessionDep,
        origin: OriginDep,
    ) -> Envelope[Removed]:
        """Withdraw a grant pending here for a login or an e-mail address."""
        scope = access.scope
        assert scope is not None  # noqa: S101
        removed = await pending.revoke(
            session, scope=scope, invitee=_invitee(body), role=body.role, caller_role=access.role
        )
        await audit.record_request(
            session,
            access,
            origin,
            "member.invite.revoke",
            kind,
            scope.resource_id,
            **_invitee_details(removed),
        )
        return ok(Removed())

    member_path = f"/{path}/{{id}}/members"
    router.add_api_route(member_path, list_members, methods=["GET"], name=f"list_{kind}_members")
    router.add_api_route(
        member_path,
        grant_member,
        methods=["POST"],
        name=f"grant_{kind}_member",
        responses={202: {"model": Envelope[PendingGrantPublic], "description": "Pending grant"}},
    )
    router.add_api_route(
        member_path, revoke_member, methods=["DELETE"], name=f"revoke_{kind}_member"
    )
    pending_path = f"{member_path}/pending"
    router.add_api_route(
        pending_path, list_pending, methods=["GET"], name=f"list_{kind}_pending_members"
    )
    router.add_api_route(
        pending_path, revoke_pending, methods=["DELETE"], name=f"revoke_{kind}_pending_member"
    )


_add_member_routes("organizations", "organization")
_add_member_routes("secret-groups", "secret_group")
_add_member_routes("environments", "environment")
