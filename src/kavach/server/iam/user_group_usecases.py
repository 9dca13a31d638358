"""What can be done with user groups: create, change, delete, add and remove members.

Each use case does the work of `user_groups` (under the rules of `holders`) and records its
audit event in the same transaction. The API's routes and the dashboard's pages call these.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.iam import user_groups
from kavach.server.iam.models import UserGroup
from kavach.server.iam.schemas import (
    ResourceCreate,
    ResourceUpdate,
    UserGroupMemberPublic,
    UserGroupPublic,
)


def group_of(access: Access) -> UserGroup:
    """Return the user group a request on one acts on."""
    assert isinstance(access.resource, UserGroup)  # noqa: S101 - Requirement loaded it
    return access.resource


async def _audit(
    session: AsyncSession,
    access: Access,
    origin: RequestOrigin,
    action: str,
    group: UserGroup,
    **details: object,
) -> None:
    """Record an event on the user group, naming it."""
    await audit.record_request(
        session, access, origin, action, "user_group", group.id, name=group.name, **details
    )


async def create(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: ResourceCreate
) -> UserGroupPublic:
    """Create a user group in the organization the request acts on."""
    assert access.scope is not None  # noqa: S101 - a requirement on the organization sets it
    group = await user_groups.create(
        session,
        organization_id=access.scope.organization_id,
        name=body.name,
        description=body.description,
    )
    await _audit(session, access, origin, "user_group.create", group)
    return UserGroupPublic.model_validate(group)


async def update(
    session: AsyncSession, access: Access, origin: RequestOrigin, body: ResourceUpdate
) -> UserGroupPublic:
    """Rename or describe the user group."""
    group = group_of(access)
    before = await user_groups.update(
        session, group=group, changes=body, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.update", group, changed=sorted(before))
    return UserGroupPublic.model_validate(group)


async def delete(session: AsyncSession, access: Access, origin: RequestOrigin) -> UserGroup:
    """Delete the user group; the roles granted to it go with it."""
    group = group_of(access)
    await user_groups.delete(session, group=group, caller_id=access.user.user.id)
    await _audit(session, access, origin, "user_group.delete", group)
    return group


async def add_member(
    session: AsyncSession, access: Access, origin: RequestOrigin, login: str
) -> UserGroupMemberPublic:
    """Add a user, by login, to the user group."""
    group = group_of(access)
    member = await user_groups.add_member(
        session, group=group, login=login, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.member_add", group, user=login)
    return member


async def remove_member(
    session: AsyncSession, access: Access, origin: RequestOrigin, login: str
) -> None:
    """Remove a user, by login, from the user group."""
    group = group_of(access)
    await user_groups.remove_member(
        session, group=group, login=login, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.member_remove", group, user=login)
