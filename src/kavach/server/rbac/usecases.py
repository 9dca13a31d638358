"""What can be done with a resource's members: grant (or invite), revoke, withdraw an invite.

Each use case changes roles under the rules of `members` and `pending` (`holders`) and
records its audit event in the same transaction. The API's routes and the dashboard's pages
call these, so a rule or an event added here holds for both.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin, Scope
from kavach.server.audit import service as audit
from kavach.server.rbac import members, pending
from kavach.server.rbac.models import PendingGrant, RoleBinding
from kavach.server.rbac.schemas import BindingPublic, Grant, Invitee, PendingGrantPublic, Revoke


def _scope(access: Access) -> Scope:
    scope = access.scope
    assert scope is not None  # noqa: S101 - a requirement on a resource sets it
    return scope


def _subject_details(body: Grant | Revoke) -> dict[str, str | None]:
    return {"user": body.user, "user_group": body.user_group, "role": body.role}


def _invitee_details(grant: PendingGrant) -> dict[str, str]:
    who = "email" if grant.invitee_type == pending.EMAIL else "user"
    return {who: grant.invitee, "role": grant.role}


def invitee_of(body: Invitee) -> pending.InviteeKey:
    """Return the invitee a request names: an e-mail address, else a login."""
    if body.email is not None:
        return pending.email_invitee(body.email)
    return pending.login_invitee(body.user or "")


async def grant(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: Grant
) -> BindingPublic | PendingGrantPublic:
    """Give a user or user group a role on the resource, or invite someone to it.

    A login nobody has signed in with, or an e-mail address, gets a pending grant.
    """
    scope = _scope(access)
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
            scope.resource_type,
            scope.resource_id,
            **_invitee_details(granted),
        )
        return await pending.describe_one(session, scope=scope, grant=granted)
    await audit.record(
        session,
        actor=access.principal.actor,
        action="member.grant",
        origin=origin,
        resource_type=scope.resource_type,
        resource_id=str(scope.resource_id),
        details=_subject_details(body),
    )
    described = await members.describe_bindings(session, scope=scope, bindings=[granted])
    return described[0]


async def revoke(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: Revoke
) -> RoleBinding:
    """Take a user's or user group's role on the resource away; return the binding removed."""
    scope = _scope(access)
    removed = await members.revoke(
        session, scope=scope, subject=body, role=body.role, caller_role=access.role
    )
    await audit.record(
        session,
        actor=access.principal.actor,
        action="member.revoke",
        origin=origin,
        resource_type=scope.resource_type,
        resource_id=str(scope.resource_id),
        details={**_subject_details(body), "role": removed.role},
    )
    return removed


async def withdraw(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: Invitee
) -> PendingGrant:
    """Withdraw an invite pending on the resource; return the pending grant removed."""
    scope = _scope(access)
    removed = await pending.revoke(
        session, scope=scope, invitee=invitee_of(body), role=body.role, caller_role=access.role
    )
    await audit.record_request(
        session,
        access,
        origin,
        "member.invite.revoke",
        scope.resource_type,
        scope.resource_id,
        **_invitee_details(removed),
    )
    return removed
