"""The one rule for every change of who holds a role, and an organization's last owner.

Nobody can give or take away, by any path, a role they could not grant or revoke directly.
A role granted to a user group reaches each of its members, so adding or removing a member,
renaming or deleting the group needs, on every scope where it holds a role, the right to
grant that role there (owner for owner); binding a role to a group also needs the right to
manage its members, so nobody can lock a group's managers out of it. Deleting an
organization, secret group or environment needs owner on it, which grants every role on
and below it, so the bindings that go with it need no further check.

An organization's owners are the users holding owner on it directly or through a user
group. Every change that may end someone's ownership locks the organization and counts its
owners after the change, in the same transaction, so two such changes at once cannot both
pass on a count the other is about to make wrong.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ORGANIZATION, Scope
from kavach.server.errors import Forbidden, LastOwner
from kavach.server.iam.models import UserGroup
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.models import RoleBinding
from kavach.server.rbac.policy import role_allows

_LABELS = {"organization": "organization", "secret_group": "secret group"}


def may_grant(caller_role: str | None, role: str) -> bool:
    """Say whether a caller holding `caller_role` on a scope may grant or revoke `role` there."""
    if caller_role is None or not role_allows(caller_role, "members.grant"):
        return False
    return role != "owner" or role_allows(caller_role, "members.grant_owner")


def require_grant(caller_role: str | None, role: str) -> None:
    """Refuse unless a caller holding `caller_role` on a scope may grant `role` there."""
    if not may_grant(caller_role, role):
        if role == "owner":
            raise Forbidden("only an owner can grant, change or revoke the owner role")
        raise Forbidden(f"granting or revoking {role} needs admin or higher here")


def ends_ownership(binding: RoleBinding) -> bool:
    """Say whether removing or changing a binding may leave its organization without owners."""
    return binding.resource_type == ORGANIZATION and binding.role == "owner"


async def require_user_group_change(
    session: AsyncSession, *, caller_id: uuid.UUID, group: UserGroup, change: str
) -> list[RoleBinding]:
    """Refuse a change to a user group unless the caller may grant every role it holds.

    Return the group's bindings.
    """
    bindings = await rbac_service.group_bindings(session, user_group_id=group.id)
    for binding in bindings:
        scope = await rbac_service.scope_of(session, binding)
        held = await rbac_service.effective_role(session, user_id=caller_id, scope=scope)
        if not may_grant(held, binding.role):
            name = await rbac_service.resource_name(
                session, resource_type=binding.resource_type, resource_id=binding.resource_id
            )
            where = f"{_LABELS.get(binding.resource_type, binding.resource_type)} {name}"
            raise Forbidden(
                f"user group {group.name!r} holds {binding.role} on {where}: {change} it needs "
                f"the right to grant {binding.role} there"
            )
    return bindings


async def require_group_manager(
    session: AsyncSession, *, caller_id: uuid.UUID, organization_id: uuid.UUID
) -> None:
    """Refuse to bind a role to a user group unless the caller manages its members.

    A role given to a group reaches every member its managers add later, and once bound it
    takes the right to grant that role to change the group: someone who could only grant on
    one environment would otherwise lock the organization's admins out of their own group.
    """
    scope = Scope(organization_id=organization_id)
    held = await rbac_service.effective_role(session, user_id=caller_id, scope=scope)
    if held is None or not role_allows(held, "user_group.members"):
        raise Forbidden(
            "granting a role to a user group needs the right to manage its members "
            "(admin or higher on its organization)"
        )


async def keep_an_owner(session: AsyncSession, *, organization_id: uuid.UUID) -> None:
    """Refuse the change just made if it left the organization without an owner."""
    await session.flush()
    await rbac_service.lock_organization(session, organization_id=organization_id)
    if await rbac_service.count_owners(session, organization_id=organization_id) == 0:
        raise LastOwner("an organization needs at least one owner; add another owner first")
