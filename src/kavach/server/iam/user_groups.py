"""Database work on user groups and their members."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.errors import AlreadyExists, NotFound
from kavach.server.iam.models import User, UserGroup, UserGroupMember
from kavach.server.iam.schemas import ResourceUpdate, UserGroupMemberPublic, UserGroupPublic
from kavach.server.iam.tree import flush_unique, update_node
from kavach.server.pages import Keyset, Page, PageRequest
from kavach.server.rbac import holders


async def create(
    session: AsyncSession, *, organization_id: uuid.UUID, name: str, description: str | None
) -> UserGroup:
    """Create a user group in an organization."""
    exists = select(UserGroup.id).where(
        UserGroup.organization_id == organization_id, UserGroup.name == name
    )
    if await session.scalar(exists):
        raise AlreadyExists(f"user group {name!r} already exists")
    group = UserGroup(organization_id=organization_id, name=name, description=description)
    session.add(group)
    await flush_unique(session, "user group", name)
    return group


USER_GROUPS = Keyset("user-groups", UserGroup.name)  # names are unique in an organization
GROUP_MEMBERS = Keyset("user-group-members", User.login)


async def list_in(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    request: PageRequest,
    name: str | None = None,
) -> Page[UserGroupPublic]:
    """Return a page of an organization's user groups by name (or the one named)."""
    query = select(UserGroup).where(UserGroup.organization_id == organization_id)
    if name is not None:
        query = query.where(UserGroup.name == name)
    found = list(await session.scalars(USER_GROUPS.page(query, request)))
    groups, after = USER_GROUPS.cut(found, request, lambda group: (group.name,))
    return Page(items=[UserGroupPublic.model_validate(g) for g in groups], next=after)


async def _user(session: AsyncSession, login: str) -> User:
    user = await session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound(f"no user with login {login!r}")
    return user


async def members(
    session: AsyncSession, *, group: UserGroup, request: PageRequest
) -> Page[UserGroupMemberPublic]:
    """Return a page of a user group's members by login."""
    query = (
        select(User, UserGroupMember.added_at)
        .join(UserGroupMember, UserGroupMember.user_id == User.id)
        .where(UserGroupMember.user_group_id == group.id)
    )
    found = list(await session.execute(GROUP_MEMBERS.page(query, request)))
    rows, after = GROUP_MEMBERS.cut(found, request, lambda row: (row[0].login,))
    items = [
        UserGroupMemberPublic(user_id=user.id, login=user.login, name=user.name, added_at=added)
        for user, added in rows
    ]
    return Page(items=items, next=after)


async def update(
    session: AsyncSession, *, group: UserGroup, changes: ResourceUpdate, caller_id: uuid.UUID
) -> dict[str, str | None]:
    """Rename or describe a user group; return the changed fields' old values."""
    await holders.require_user_group_change(
        session, caller_id=caller_id, group=group, change="changing"
    )
    return await update_node(session, node=group, changes=changes, what="user group")


async def delete(session: AsyncSession, *, group: UserGroup, caller_id: uuid.UUID) -> None:
    """Delete a user group; the roles granted to it go with it."""
    await holders.require_user_group_change(
        session, caller_id=caller_id, group=group, change="deleting"
    )
    await session.delete(group)
    await holders.keep_an_owner(session, organization_id=group.organization_id)


async def add_member(
    session: AsyncSession, *, group: UserGroup, login: str, caller_id: uuid.UUID
) -> UserGroupMemberPublic:
    """Add a user to a user group."""
    await holders.require_user_group_change(
        session, caller_id=caller_id, group=group, change="adding members to"
    )
    user = await _user(session, login)
    if await session.get(UserGroupMember, (group.id, user.id)) is not None:
        raise AlreadyExists(f"{login!r} is already a member of {group.name!r}")
    member = UserGroupMember(user_group_id=group.id, user_id=user.id)
    session.add(member)
    await flush_unique(session, "member", login)
    return UserGroupMemberPublic(
        user_id=user.id, login=user.login, name=user.name, added_at=member.added_at
    )


async def remove_member(
    session: AsyncSession, *, group: UserGroup, login: str, caller_id: uuid.UUID
) -> None:
    """Remove a user from a user group."""
    await holders.require_user_group_change(
        session, caller_id=caller_id, group=group, change="removing members from"
    )
    user = await _user(session, login)
    member = await session.get(UserGroupMember, (group.id, user.id))
    if member is None:
        raise NotFound(f"{login!r} is not a member of {group.name!r}")
    await session.delete(member)
    await holders.keep_an_owner(session, organization_id=group.organization_id)
