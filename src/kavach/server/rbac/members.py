"""Grant, revoke and list roles on a resource, with the owner rules."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Uuid,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Scope
from kavach.server.errors import Conflict, NotFound, ValidationFailed
from kavach.server.iam.models import User, UserGroup
from kavach.server.pages import Keyset, Page, PageRequest
from kavach.server.rbac import holders, pending
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.models import PendingGrant, RoleBinding
from kavach.server.rbac.schemas import BindingPublic, Grant, Subject, UserGroupRef, UserRef


async def find_user(session: AsyncSession, login: str) -> uuid.UUID | None:
    """Return the user with a login: the exact one, else the one it names without case."""
    exact = await session.scalar(select(User.id).where(User.login == login))
    if exact is not None:
        return exact
    # Both identity providers' logins are case-insensitive; one of each may differ in case.
    alike = list(
        await session.scalars(select(User.id).where(func.lower(User.login) == login.lower()))
    )
    if len(alike) > 1:
        raise Conflict(
            f"several users' logins differ from {login!r} only in case; give one exactly"
        )
    return alike[0] if alike else None


async def resolve_subject(
    session: AsyncSession, *, subject: Subject, organization_id: uuid.UUID
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """Return (user_id, user_group_id) for a subject, or a clear 404."""
    if subject.user is not None:
        user_id = await find_user(session, subject.user)
        if user_id is None:
            raise NotFound(f"no user with login {subject.user!r}")
        return user_id, None
    name = subject.user_group or ""
    matches = [UserGroup.name == name]
    with contextlib.suppress(ValueError):
        matches.append(UserGroup.id == uuid.UUID(name))
    group_id = await session.scalar(
        select(UserGroup.id).where(UserGroup.organization_id == organization_id, or_(*matches))
    )
    if group_id is None:
        raise NotFound(f"no user group {name!r} in this organization")
    return None, group_id


async def grant(
    session: AsyncSession,
    *,
    scope: Scope,
    subject: Grant,
    caller_role: str | None,
    caller_id: uuid.UUID,
) -> RoleBinding | PendingGrant:
    """Give a subject a role on the scope, or change the role it has there.

    An e-mail address, or a login nobody has signed in with, gets a pending grant instead.
    """
    role = subject.role
    invitee: pending.InviteeKey | None = None
    if subject.email is not None:
        invitee = pending.email_invitee(subject.email)
    elif subject.user is not None:
        user_id, group_id = await find_user(session, subject.user), None
        if user_id is None:
            invitee = pending.login_invitee(subject.user)
    else:
        user_id, group_id = await resolve_subject(
            session, subject=subject, organization_id=scope.organization_id
        )
    if invitee is not None:
        return await pending.invite(
            session,
            scope=scope,
            invitee=invitee,
            role=role,
            caller_role=caller_role,
            caller_id=caller_id,
        )
    existing = await rbac_service.find_binding(
        session, scope=scope, user_id=user_id, user_group_id=group_id
    )
    holders.require_grant(caller_role, role)
    if existing is not None:
        holders.require_grant(caller_role, existing.role)
    if group_id is not None:
        await holders.require_group_manager(
            session, caller_id=caller_id, organization_id=scope.organization_id
        )
    ending = existing is not None and holders.ends_ownership(existing) and role != "owner"
    binding = await rbac_service.put_binding(
        session,
        scope=scope,
        user_id=user_id,
        user_group_id=group_id,
        role=role,
        granted_by=caller_id,
    )
    if ending:
        await holders.keep_an_owner(session, organization_id=scope.organization_id)
    return binding


async def revoke(
    session: AsyncSession,
    *,
    scope: Scope,
    subject: Subject,
    role: str | None,
    caller_role: str | None,
) -> RoleBinding:
    """Remove a subject's role from the scope."""
    user_id, group_id = await resolve_subject(
        session, subject=subject, organization_id=scope.organization_id
    )
    binding = await rbac_service.find_binding(
        session, scope=scope, user_id=user_id, user_group_id=group_id
    )
    if binding is None or (role is not None and binding.role != role):
        raise NotFound("that subject holds no such role directly on this resource")
    holders.require_grant(caller_role, binding.role)
    await session.delete(binding)
    await session.flush()
    if holders.ends_ownership(binding):
        await holders.keep_an_owner(session, organization_id=scope.organization_id)
    return binding


# Outermost level first, then by role and binding: ids are unique, so the order is total.
MEMBERS = Keyset("members", literal_column("depth", Integer), RoleBinding.role, RoleBinding.id)


async def describe(
    session: AsyncSession, *, scope: Scope, request: PageRequest
) -> Page[BindingPublic]:
    """List a page of the bindings on a scope and its ancestors, naming subjects and resources."""
    levels = union_all(*_levels(scope, request)).subquery()
    query = (
        select(RoleBinding, levels.c.depth)
        .join(levels, RoleBinding.id == levels.c.id)
        .order_by(levels.c.depth, levels.c.role, levels.c.id)
        .limit(request.limit + 1)
    )
    found = list(await session.execute(query))
    rows, after = MEMBERS.cut(found, request, lambda row: (row[1], row[0].role, row[0].id))
    described = await describe_bindings(session, scope=scope, bindings=[b for b, _ in rows])
    return Page(items=described, next=after)


def _levels(scope: Scope, request: PageRequest) -> list[Select[Any]]:
    """Return, per level of the chain from the cursor on, the first page of its bindings."""
    after = MEMBERS.after(request)
    levels: list[Select[Any]] = []
    # One short index scan per level (bindings by resource, role, id), never a sort of all.
    for depth, (kind, resource_id) in enumerate(scope.chain()):
        if after is not None and depth < after[0]:
            continue
        level = select(
            RoleBinding.id, RoleBinding.role, literal(depth, Integer).label("depth")
        ).where(RoleBinding.resource_type == kind, RoleBinding.resource_id == resource_id)
        if after is not None and depth == after[0]:
            level = level.where(
                tuple_(RoleBinding.role, RoleBinding.id)
                > tuple_(literal(after[1]), literal(after[2], Uuid))
            )
        inner = level.order_by(RoleBinding.role, RoleBinding.id).limit(request.limit + 1)
        # SQLite takes a branch's own order and limit only inside a subquery.
        levels.append(select(inner.subquery()))
    if not levels:
        # The cursor names a level this scope's chain does not have.
        raise ValidationFailed("the cursor is not one this listing gave")
    return levels


async def describe_bindings(
    session: AsyncSession, *, scope: Scope, bindings: list[RoleBinding]
) -> list[BindingPublic]:
    """Name the subjects and resources of bindings on a scope's chain, in the order given."""
    user_ids = {b.user_id for b in bindings if b.user_id}
    group_ids = {b.user_group_id for b in bindings if b.user_group_id}
    logins: dict[uuid.UUID, str] = {
        row.id: row.login
        for row in await session.execute(select(User.id, User.login).where(User.id.in_(user_ids)))
    }
    groups: dict[uuid.UUID, str] = {
        row.id: row.name
        for row in await session.execute(
            select(UserGroup.id, UserGroup.name).where(UserGroup.id.in_(group_ids))
        )
    }
    names = await rbac_service.chain_names(session, scope)
    return [
        BindingPublic(
            subject_type="user" if b.user_id else "user_group",
            user=UserRef(id=b.user_id, login=logins[b.user_id]) if b.user_id else None,
            user_group=(
                UserGroupRef(id=b.user_group_id, name=groups[b.user_group_id])
                if b.user_group_id
                else None
            ),
            role=b.role,
            resource_type=b.resource_type,
            resource_id=b.resource_id,
            resource_name=names[b.resource_id],
            inherited=b.resource_id != scope.resource_id,
        )
        for b in bindings
    ]
