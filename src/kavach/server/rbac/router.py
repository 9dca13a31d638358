"""HTTP routes for members (role bindings) of organizations, secret groups and environments.

No `from __future__ import annotations` here: the routes are built in a loop and their
annotations must be evaluated while the loop variable is in scope.
"""

from typing import Annotated

from fastapi import Depends, Response

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam.schemas import Removed
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac import members, pending, usecases
from kavach.server.rbac.deps import Requirement, ResourceKind
from kavach.server.rbac.schemas import BindingPublic, Grant, Invitee, PendingGrantPublic, Revoke

router = api_router(prefix=API_PREFIX, tags=["members"])


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
        granted = await usecases.grant(session, access, origin, body)
        if isinstance(granted, PendingGrantPublic):
            response.status_code = 202
        return ok(granted)

    async def revoke_member(
        body: Revoke,
        access: Annotated[Access, Depends(Requirement("members.grant", kind))],
        session: SessionDep,
        origin: OriginDep,
    ) -> Envelope[Removed]:
        """Take a user's or user group's role here away."""
        await usecases.revoke(session, access, origin, body)
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
        await usecases.withdraw(session, access, origin, body)
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
